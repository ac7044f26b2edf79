// A plain HTTP GET on loopback for the admin endpoint's /stats and /metrics in tests.
import { request } from "node:http";

/** The status, body and headers of `method` `path` on 127.0.0.1:`port`. */
export function httpRequest(port: number, path: string, method: string): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    request({ host: "127.0.0.1", port, path, method }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    }).on("error", reject).end();
  });
}

/** The status and body of GET `path` on 127.0.0.1:`port`. */
export async function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  const { status, body } = await httpRequest(port, path, "GET");
  return { status, body };
}

/** The body of GET `path` on 127.0.0.1:`port`. */
export async function httpBody(port: number, path: string): Promise<string> {
  return (await httpGet(port, path)).body;
}
