// GETs a URL and prints the body: how a test reads a proxy's admin endpoint (/stats) that listens
// on 127.0.0.1 inside a namespace. Exits 1 on a failure or a status other than 200.
// usage: http-get.js URL
const url = process.argv[2];
if (!url) throw new TypeError("usage: http-get.js URL");
const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
const body = await res.text();
if (res.status !== 200) {
  console.error(`${url}: HTTP ${res.status}: ${body.slice(0, 500)}`);
  process.exit(1);
}
process.stdout.write(body);
