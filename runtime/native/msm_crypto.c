// Host crypto for filters (docs/host-crypto.md): AES-CTR, HMAC-SHA1 and AES-GCM computed by the
// process's OpenSSL (AES-NI, SHA extensions, constant-time AES) on ranges of a filter's memory.
//
// No link-time dependency on OpenSSL and none of its headers: the few functions used are found at
// load, first among the symbols the process already exports (Node's binary exports its bundled
// OpenSSL 3), else in libcrypto.so.3 (Bun exports none). Without either the addon still loads and
// says why it is unavailable.
//
// A filter is untrusted: every pointer and length is checked against the ArrayBuffer given with
// the call before anything is read or written, so no argument can crash the process. Keys live
// in a table per filter instance; JS owns the table as an external, freed by its finalizer if
// close() was never called. A table is used by one thread (its worker) only.
#define _GNU_SOURCE
#include <node_api.h>

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

// runtime/abi.ts enum Status
enum { ST_OK = 0, ST_BAD_ARGUMENT = 2, ST_NO_SPACE = 3, ST_FAILED = 6 };
// runtime/filter-host/host-crypto.ts enum CryptoAlg
enum { ALG_AES_CTR = 1, ALG_HMAC_SHA1 = 2, ALG_AES_GCM = 3 };

#define MAX_RANGE 65536
#define MAX_KEYS 4096
// handle = generation * SLOT_SPAN + slot + 1: a dropped handle stays invalid while its slot is reused
#define SLOT_SPAN 4096
#define MAX_GENERATION ((INT32_MAX - SLOT_SPAN) / SLOT_SPAN)

// OpenSSL's types, opaque here except SHA_CTX, whose layout is public and stable (1.0 to 3.x)
typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;
typedef struct evp_cipher_st EVP_CIPHER;
typedef struct engine_st ENGINE;
typedef struct {
  uint32_t h[5];
  uint32_t nl, nh;
  uint32_t data[16];
  unsigned int num;
} SHA_CTX;

#define EVP_CTRL_GCM_GET_TAG 0x10
#define EVP_CTRL_GCM_SET_TAG 0x11

static struct {
  unsigned long (*version_num)(void);
  EVP_CIPHER_CTX* (*ctx_new)(void);
  void (*ctx_free)(EVP_CIPHER_CTX*);
  int (*ctx_ctrl)(EVP_CIPHER_CTX*, int, int, void*);
  int (*cipher_init)(EVP_CIPHER_CTX*, const EVP_CIPHER*, ENGINE*, const unsigned char*, const unsigned char*, int);
  int (*cipher_update)(EVP_CIPHER_CTX*, unsigned char*, int*, const unsigned char*, int);
  int (*cipher_final)(EVP_CIPHER_CTX*, unsigned char*, int*);
  const EVP_CIPHER* (*aes_128_ctr)(void);
  const EVP_CIPHER* (*aes_256_ctr)(void);
  const EVP_CIPHER* (*aes_128_gcm)(void);
  const EVP_CIPHER* (*aes_256_gcm)(void);
  int (*sha1_init)(SHA_CTX*);
  int (*sha1_update)(SHA_CTX*, const void*, size_t);
  int (*sha1_final)(unsigned char*, SHA_CTX*);
  void (*cleanse)(void*, size_t);
  void (*clear_errors)(void);
} ossl;

static const char* const OSSL_NAMES[] = {
    "OpenSSL_version_num", "EVP_CIPHER_CTX_new", "EVP_CIPHER_CTX_free",
    "EVP_CIPHER_CTX_ctrl", "EVP_CipherInit_ex", "EVP_CipherUpdate", "EVP_CipherFinal_ex",
    "EVP_aes_128_ctr", "EVP_aes_256_ctr", "EVP_aes_128_gcm", "EVP_aes_256_gcm",
    "SHA1_Init", "SHA1_Update", "SHA1_Final", "OPENSSL_cleanse", "ERR_clear_error",
};
#define OSSL_COUNT (sizeof OSSL_NAMES / sizeof OSSL_NAMES[0])
_Static_assert(sizeof ossl == OSSL_COUNT * sizeof(void*), "one name per function pointer");

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char unavailable[512];  // "" when the functions above are usable
static char description[256];

// All the functions from one object (symbols of two OpenSSL copies must never mix), or a reason.
static int resolve(void* handle, const char* where) {
  void* found[OSSL_COUNT];
  const void* base = NULL;
  for (size_t i = 0; i < OSSL_COUNT; i++) {
    found[i] = dlsym(handle, OSSL_NAMES[i]);
    Dl_info info;
    if (found[i] == NULL || dladdr(found[i], &info) == 0) {
      snprintf(unavailable, sizeof unavailable, "%s has no %s", where, OSSL_NAMES[i]);
      return 0;
    }
    if (base == NULL) base = info.dli_fbase;
    if (info.dli_fbase != base) {
      snprintf(unavailable, sizeof unavailable, "%s: %s is in another object than %s", where, OSSL_NAMES[i], OSSL_NAMES[0]);
      return 0;
    }
  }
  unsigned long (*version_num)(void) = (unsigned long (*)(void))found[0];
  unsigned long v = version_num();
  if ((v >> 28) < 3) {
    // 1.1's EVP and SHA1 would do, but the only tested one is 3; BoringSSL also reports 1.1 here
    snprintf(unavailable, sizeof unavailable, "%s has OpenSSL version 0x%lx, not 3.x", where, v);
    return 0;
  }
  memcpy(&ossl, found, sizeof ossl);
  return 1;
}

// What the CPU offers OpenSSL, for the description; OpenSSL makes its own choice the same way.
static const char* cpu_features(void) {
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, c, d;
  int aes = __get_cpuid(1, &a, &b, &c, &d) && (c >> 25) & 1;
  int sha = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b >> 29) & 1;
  if (aes && sha) return "AES-NI and SHA";
  if (aes) return "AES-NI and SHA-1 without SHA extensions";
  if (sha) return "SHA and AES without AES-NI";
  return "AES without AES-NI and SHA-1 without SHA extensions";
#else
  return "AES and SHA-1 (CPU extensions not inspected on this architecture)";
#endif
}

static void load(void) {
  char first[128] = "";
  const char* from = NULL;
  if (resolve(RTLD_DEFAULT, "the process")) {
    from = "process";
  } else {
    snprintf(first, sizeof first, "%.120s", unavailable);
    void* lib = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
      const char* err = dlerror();
      snprintf(unavailable, sizeof unavailable, "no OpenSSL 3: %s, and libcrypto.so.3 did not load (%s)", first, err ? err : "?");
      return;
    }
    if (!resolve(lib, "libcrypto.so.3")) {
      dlclose(lib);
      return;
    }
    from = "libcrypto.so.3";
  }
  unavailable[0] = 0;
  if (strcmp(from, "process") == 0) {
    Dl_info info;
    const char* path = dladdr((void*)ossl.version_num, &info) && info.dli_fname ? info.dli_fname : "the process";
    const char* slash = strrchr(path, '/');
    from = slash ? slash + 1 : path;
  }
  unsigned long v = ossl.version_num();
  snprintf(description, sizeof description, "%s via OpenSSL %lu.%lu.%lu (%s)", cpu_features(), (v >> 28) & 0xf, (v >> 20) & 0xff,
           (v >> 4) & 0xff, from);
}

// ---------------------------------------------------------------------------------------------
// Key tables

typedef struct {
  int32_t alg;  // 0: free
  uint32_t generation;
  union {
    EVP_CIPHER_CTX* cipher;  // AES-CTR: a CTR context; AES-GCM: a GCM context; each holds the key schedule
    struct {
      SHA_CTX inner, outer;  // SHA-1 after the ipad and opad blocks (RFC 2104)
    } hmac;
  } u;
} Key;

typedef struct {
  int closed;
  uint32_t max_keys;
  uint32_t live;
  uint32_t free_count;
  uint32_t* free_slots;  // a stack of free slot numbers
  Key* keys;
  uint8_t* scratch;  // GCM open decrypts here first, so a forged packet's plaintext never reaches the filter
} Table;

static void wipe(void* p, size_t n) {
  if (ossl.cleanse) {
    ossl.cleanse(p, n);
  } else {
    volatile uint8_t* v = p;
    while (n--) *v++ = 0;
  }
}

static void drop_key(Table* t, uint32_t slot) {
  Key* k = &t->keys[slot];
  if (k->alg == ALG_HMAC_SHA1) {
    wipe(&k->u.hmac, sizeof k->u.hmac);
  } else if (k->u.cipher != NULL) {
    ossl.ctx_free(k->u.cipher);  // OpenSSL clears the key schedule as it frees it
  }
  k->alg = 0;
  k->u.cipher = NULL;
  k->generation = k->generation >= MAX_GENERATION ? 0 : k->generation + 1;
  t->free_slots[t->free_count++] = slot;
  t->live--;
}

static void close_table(Table* t) {
  if (t->closed) return;
  for (uint32_t s = 0; s < t->max_keys; s++) {
    if (t->keys[s].alg != 0) drop_key(t, s);
  }
  if (t->scratch != NULL) {
    wipe(t->scratch, MAX_RANGE);
    free(t->scratch);
  }
  free(t->keys);
  free(t->free_slots);
  t->scratch = NULL;
  t->keys = NULL;
  t->free_slots = NULL;
  t->closed = 1;
}

static void finalize_table(napi_env env, void* data, void* hint) {
  close_table(data);
  free(data);
}

// The key of a live handle, or NULL.
static Key* find_live(Table* t, double handle) {
  if (!(handle >= 1 && handle <= INT32_MAX) || handle != (double)(int32_t)handle) return NULL;
  uint32_t h = (uint32_t)handle - 1;
  uint32_t slot = h % SLOT_SPAN;
  if (slot >= t->max_keys) return NULL;
  Key* k = &t->keys[slot];
  return k->alg != 0 && k->generation == h / SLOT_SPAN ? k : NULL;
}

// The key of a live handle made for this alg, or NULL.
static Key* find_key(Table* t, double handle, int32_t alg) {
  Key* k = find_live(t, handle);
  return k != NULL && k->alg == alg ? k : NULL;
}

// ---------------------------------------------------------------------------------------------
// Arguments

#define MAX_ARGS 9

typedef struct {
  napi_env env;
  napi_value argv[MAX_ARGS];
  size_t argc;
  Table* table;
  uint8_t* mem;
  size_t mem_len;
} Call;

static napi_value int_result(napi_env env, int32_t v) {
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}

// A refused call (a wrong GCM tag) may leave errors in this thread's OpenSSL error queue; under
// Node that queue is node:crypto's too, which must not find them there later.
static napi_value openssl_failed(napi_env env, int32_t status) {
  ossl.clear_errors();
  return int_result(env, status);
}

// Reads the arguments; 0 when the first is not a table (a programming error of the wrapper: throws).
static int begin(napi_env env, napi_callback_info info, Call* c) {
  c->env = env;
  c->argc = MAX_ARGS;
  for (size_t i = 0; i < MAX_ARGS; i++) c->argv[i] = NULL;
  c->table = NULL;
  c->mem = NULL;
  c->mem_len = 0;
  napi_valuetype type;
  if (napi_get_cb_info(env, info, &c->argc, c->argv, NULL, NULL) != napi_ok || c->argc < 1 ||
      napi_typeof(env, c->argv[0], &type) != napi_ok || type != napi_external ||
      napi_get_value_external(env, c->argv[0], (void**)&c->table) != napi_ok || c->table == NULL) {
    napi_throw_type_error(env, NULL, "msm_crypto: the first argument must be a key table");
    return 0;
  }
  return 1;
}

static double number_arg(Call* c, size_t i) {
  double v;
  if (i >= c->argc || c->argv[i] == NULL || napi_get_value_double(c->env, c->argv[i], &v) != napi_ok) return NAN;
  return v;
}

static int memory_arg(Call* c, size_t i) {
  void* data = NULL;
  size_t len = 0;
  if (i >= c->argc || c->argv[i] == NULL || napi_get_arraybuffer_info(c->env, c->argv[i], &data, &len) != napi_ok) return 0;
  c->mem = data;
  c->mem_len = data == NULL ? 0 : len;  // a detached buffer: nothing is in range
  return 1;
}

// mem[ptr, ptr+len) when ptr and len are integers, len <= MAX_RANGE and the range is inside mem; else NULL.
// An empty range in bounds yields a non-NULL pointer that is never dereferenced.
static uint8_t* range(Call* c, double ptr, double len) {
  static uint8_t empty;
  if (!(ptr >= 0 && len >= 0 && len <= MAX_RANGE && ptr <= (double)c->mem_len)) return NULL;
  if (ptr != (double)(int64_t)ptr || len != (double)(int64_t)len) return NULL;
  size_t p = (size_t)ptr, n = (size_t)len;
  if (n > c->mem_len - p) return NULL;
  if (c->mem == NULL) return n == 0 ? &empty : NULL;
  return c->mem + p;
}

// ---------------------------------------------------------------------------------------------
// Calls

static napi_value available(napi_env env, napi_callback_info info) {
  pthread_once(&load_once, load);
  napi_value out;
  napi_create_string_utf8(env, unavailable, NAPI_AUTO_LENGTH, &out);
  return out;
}

static napi_value describe(napi_env env, napi_callback_info info) {
  pthread_once(&load_once, load);
  napi_value out;
  napi_create_string_utf8(env, unavailable[0] ? unavailable : description, NAPI_AUTO_LENGTH, &out);
  return out;
}

// createTable(maxKeys): an external, or null when unavailable or maxKeys is not 1..4096.
static napi_value create_table(napi_env env, napi_callback_info info) {
  pthread_once(&load_once, load);
  napi_value argv[1], out;
  size_t argc = 1;
  double max = NAN;
  napi_get_null(env, &out);
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_double(env, argv[0], &max) != napi_ok || !(max >= 1 && max <= MAX_KEYS) || max != (double)(int)max ||
      unavailable[0]) {
    return out;
  }
  Table* t = calloc(1, sizeof *t);
  if (t == NULL) return out;
  t->max_keys = (uint32_t)max;
  t->keys = calloc(t->max_keys, sizeof *t->keys);
  t->free_slots = malloc(t->max_keys * sizeof *t->free_slots);
  if (t->keys == NULL || t->free_slots == NULL) {
    free(t->keys);
    free(t->free_slots);
    free(t);
    return out;
  }
  // pop order 0, 1, 2...: the first keys get handles 1, 2, 3...
  for (uint32_t i = 0; i < t->max_keys; i++) t->free_slots[i] = t->max_keys - 1 - i;
  t->free_count = t->max_keys;
  if (napi_create_external(env, t, finalize_table, NULL, &out) != napi_ok) {
    close_table(t);
    free(t);
    napi_get_null(env, &out);
  }
  return out;
}

static int init_cipher(EVP_CIPHER_CTX** out, const EVP_CIPHER* cipher, const uint8_t* key) {
  EVP_CIPHER_CTX* ctx = ossl.ctx_new();
  if (ctx == NULL) return 0;
  if (ossl.cipher_init(ctx, cipher, NULL, key, NULL, 1) != 1) {
    ossl.ctx_free(ctx);
    return 0;
  }
  *out = ctx;
  return 1;
}

static void hmac_init(Key* k, const uint8_t* key, size_t len) {
  uint8_t pad[64];
  memset(pad, 0x36, sizeof pad);
  for (size_t i = 0; i < len; i++) pad[i] ^= key[i];
  ossl.sha1_init(&k->u.hmac.inner);
  ossl.sha1_update(&k->u.hmac.inner, pad, sizeof pad);
  for (size_t i = 0; i < sizeof pad; i++) pad[i] ^= 0x36 ^ 0x5c;
  ossl.sha1_init(&k->u.hmac.outer);
  ossl.sha1_update(&k->u.hmac.outer, pad, sizeof pad);
  wipe(pad, sizeof pad);
}

// create(table, alg, mem, keyPtr, keyLen): a handle > 0 or a negative status.
static napi_value create_key(napi_env env, napi_callback_info info) {
  Call c;
  if (!begin(env, info, &c)) return NULL;
  Table* t = c.table;
  if (t->closed) return int_result(env, -ST_FAILED);
  double alg = number_arg(&c, 1);
  if (!memory_arg(&c, 2)) return int_result(env, -ST_BAD_ARGUMENT);
  double key_len = number_arg(&c, 4);
  const uint8_t* key = range(&c, number_arg(&c, 3), key_len);
  if (key == NULL) return int_result(env, -ST_BAD_ARGUMENT);
  size_t n = (size_t)key_len;
  int ok_len = alg == ALG_HMAC_SHA1 ? n >= 1 && n <= 64 : (alg == ALG_AES_CTR || alg == ALG_AES_GCM) && (n == 16 || n == 32);
  if (!ok_len) return int_result(env, -ST_BAD_ARGUMENT);
  if (t->free_count == 0) return int_result(env, -ST_NO_SPACE);
  uint32_t slot = t->free_slots[t->free_count - 1];
  Key* k = &t->keys[slot];
  if (alg == ALG_HMAC_SHA1) {
    hmac_init(k, key, n);
  } else if (alg == ALG_AES_CTR) {
    if (!init_cipher(&k->u.cipher, n == 16 ? ossl.aes_128_ctr() : ossl.aes_256_ctr(), key)) return openssl_failed(env, -ST_FAILED);
  } else {
    if (t->scratch == NULL && (t->scratch = malloc(MAX_RANGE)) == NULL) return int_result(env, -ST_FAILED);
    if (!init_cipher(&k->u.cipher, n == 16 ? ossl.aes_128_gcm() : ossl.aes_256_gcm(), key)) return openssl_failed(env, -ST_FAILED);
  }
  k->alg = (int32_t)alg;
  t->free_count--;
  t->live++;
  return int_result(env, (int32_t)(k->generation * SLOT_SPAN + slot + 1));
}

// drop(table, key): status.
static napi_value drop(napi_env env, napi_callback_info info) {
  Call c;
  if (!begin(env, info, &c)) return NULL;
  if (c.table->closed) return int_result(env, ST_FAILED);
  Key* k = find_live(c.table, number_arg(&c, 1));
  if (k == NULL) return int_result(env, ST_BAD_ARGUMENT);
  drop_key(c.table, (uint32_t)(k - c.table->keys));
  return int_result(env, ST_OK);
}

// ctrXor(table, key, mem, ivPtr, dataPtr, len): data ^= E(k, IV) || E(k, IV+1) || ..., the whole
// 16-byte IV a big-endian 128-bit counter (RFC 3711 4.1.1, SP 800-38A B.1), as OpenSSL's CTR
// mode counts (its 32-bit counter fast path carries into the upper 96 bits).
//
// One CTR context per key, re-initialised with each packet's IV (EVP_CipherInit_ex with no cipher
// and no key keeps the key schedule). Measured against an ECB context encrypting counter blocks
// built here, then a 64-bit XOR loop, ns per 1200-byte call from JS on the 2-core EPYC (AES-NI,
// the call's own N-API overhead ~60-250 ns included): Node 20 re-init 254-275, ECB 395-428;
// Bun re-init 357-376, ECB 484-713. The re-init is faster and leaves the counting to OpenSSL.
static napi_value ctr_xor(napi_env env, napi_callback_info info) {
  Call c;
  if (!begin(env, info, &c)) return NULL;
  if (c.table->closed) return int_result(env, ST_FAILED);
  Key* k = find_key(c.table, number_arg(&c, 1), ALG_AES_CTR);
  if (k == NULL || !memory_arg(&c, 2)) return int_result(env, ST_BAD_ARGUMENT);
  const uint8_t* ivp = range(&c, number_arg(&c, 3), 16);
  double len = number_arg(&c, 5);
  uint8_t* data = range(&c, number_arg(&c, 4), len);
  if (ivp == NULL || data == NULL) return int_result(env, ST_BAD_ARGUMENT);
  uint8_t iv[16];
  memcpy(iv, ivp, sizeof iv);  // the IV may overlap the data
  int out_len = 0;
  if (ossl.cipher_init(k->u.cipher, NULL, NULL, NULL, iv, 1) != 1) return openssl_failed(env, ST_FAILED);
  if (len > 0 && (ossl.cipher_update(k->u.cipher, data, &out_len, data, (int)len) != 1 || out_len != (int)len)) {
    return openssl_failed(env, ST_FAILED);
  }
  return int_result(env, ST_OK);
}

// hmacSha1(table, key, mem, msgPtr, msgLen, suffixPtr, suffixLen, outPtr): 20 bytes at out.
// From the SHA-1 states saved after the pad blocks: two copies, updates and finals per MAC.
// Measured against an HMAC_CTX re-initialised per MAC (HMAC_Init_ex with no key), ns per
// 1200 + 4-byte call from Node 20 on the 2-core EPYC (SHA extensions): 783-792 against 828-831.
static napi_value hmac_sha1(napi_env env, napi_callback_info info) {
  Call c;
  if (!begin(env, info, &c)) return NULL;
  if (c.table->closed) return int_result(env, ST_FAILED);
  Key* k = find_key(c.table, number_arg(&c, 1), ALG_HMAC_SHA1);
  if (k == NULL || !memory_arg(&c, 2)) return int_result(env, ST_BAD_ARGUMENT);
  double msg_len = number_arg(&c, 4), suffix_len = number_arg(&c, 6);
  const uint8_t* msg = range(&c, number_arg(&c, 3), msg_len);
  const uint8_t* suffix = range(&c, number_arg(&c, 5), suffix_len);
  uint8_t* out = range(&c, number_arg(&c, 7), 20);
  if (msg == NULL || suffix == NULL || out == NULL) return int_result(env, ST_BAD_ARGUMENT);
  SHA_CTX sha;
  uint8_t digest[20];
  memcpy(&sha, &k->u.hmac.inner, sizeof sha);
  ossl.sha1_update(&sha, msg, (size_t)msg_len);
  ossl.sha1_update(&sha, suffix, (size_t)suffix_len);
  ossl.sha1_final(digest, &sha);
  memcpy(&sha, &k->u.hmac.outer, sizeof sha);
  ossl.sha1_update(&sha, digest, sizeof digest);
  ossl.sha1_final(digest, &sha);
  memcpy(out, digest, sizeof digest);  // only now: out may overlap msg
  wipe(&sha, sizeof sha);
  return int_result(env, ST_OK);
}

// gcmSeal / gcmOpen(table, key, mem, ivPtr, aadPtr, aadLen, dataPtr, len, tagPtr): 12-byte IV, 16-byte tag.
static napi_value gcm(napi_env env, napi_callback_info info, int seal) {
  Call c;
  if (!begin(env, info, &c)) return NULL;
  Table* t = c.table;
  if (t->closed) return int_result(env, ST_FAILED);
  Key* k = find_key(t, number_arg(&c, 1), ALG_AES_GCM);
  if (k == NULL || !memory_arg(&c, 2)) return int_result(env, ST_BAD_ARGUMENT);
  const uint8_t* ivp = range(&c, number_arg(&c, 3), 12);
  double aad_len = number_arg(&c, 5), len = number_arg(&c, 7);
  const uint8_t* aad = range(&c, number_arg(&c, 4), aad_len);
  uint8_t* data = range(&c, number_arg(&c, 6), len);
  uint8_t* tagp = range(&c, number_arg(&c, 8), 16);
  if (ivp == NULL || aad == NULL || data == NULL || tagp == NULL) return int_result(env, ST_BAD_ARGUMENT);
  // the IV and tag are copied first: the ranges may overlap the data
  uint8_t iv[12], tag[16];
  memcpy(iv, ivp, sizeof iv);
  memcpy(tag, tagp, sizeof tag);
  EVP_CIPHER_CTX* ctx = k->u.cipher;
  uint8_t* out = seal ? data : t->scratch;
  int n = (int)len, out_len = 0, ok = ossl.cipher_init(ctx, NULL, NULL, NULL, iv, seal) == 1;
  if (ok && aad_len > 0) ok = ossl.cipher_update(ctx, NULL, &out_len, aad, (int)aad_len) == 1;
  if (ok && n > 0) ok = ossl.cipher_update(ctx, out, &out_len, data, n) == 1 && out_len == n;
  if (ok && !seal) ok = ossl.ctx_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag) == 1;
  if (ok) ok = ossl.cipher_final(ctx, out + n, &out_len) == 1;  // writes nothing for GCM
  if (ok && seal) ok = ossl.ctx_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
  if (!ok) {
    if (!seal) wipe(t->scratch, (size_t)n);  // unauthenticated plaintext
    return openssl_failed(env, ST_FAILED);
  }
  if (seal) memcpy(tagp, tag, sizeof tag);
  else memcpy(data, t->scratch, (size_t)n);
  return int_result(env, ST_OK);
}

static napi_value gcm_seal(napi_env env, napi_callback_info info) { return gcm(env, info, 1); }
static napi_value gcm_open(napi_env env, napi_callback_info info) { return gcm(env, info, 0); }

// size(table): live keys (0 once closed).
static napi_value size(napi_env env, napi_callback_info info) {
  Call c;
  if (!begin(env, info, &c)) return NULL;
  return int_result(env, c.table->closed ? 0 : (int32_t)c.table->live);
}

// close(table): drops every key and frees the table's memory; the external stays, closed.
static napi_value close_call(napi_env env, napi_callback_info info) {
  Call c;
  if (!begin(env, info, &c)) return NULL;
  close_table(c.table);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"unavailable", NULL, available, NULL, NULL, NULL, napi_default, NULL},
      {"describe", NULL, describe, NULL, NULL, NULL, napi_default, NULL},
      {"createTable", NULL, create_table, NULL, NULL, NULL, napi_default, NULL},
      {"create", NULL, create_key, NULL, NULL, NULL, napi_default, NULL},
      {"drop", NULL, drop, NULL, NULL, NULL, napi_default, NULL},
      {"ctrXor", NULL, ctr_xor, NULL, NULL, NULL, napi_default, NULL},
      {"hmacSha1", NULL, hmac_sha1, NULL, NULL, NULL, napi_default, NULL},
      {"gcmSeal", NULL, gcm_seal, NULL, NULL, NULL, napi_default, NULL},
      {"gcmOpen", NULL, gcm_open, NULL, NULL, NULL, napi_default, NULL},
      {"size", NULL, size, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, close_call, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
