// Batched UDP I/O for the proxy's data plane (docs/batched-io.md).
//
// Receive: recvmmsg into one preallocated arena per worker, then one call into JS per batch with
// the count; lengths and source addresses are in a typed array beside the arena, so no JS object
// is made per packet. Send: sendmmsg straight from the memory the chain's last stage wrote (a
// filter's linear memory or the receive arena), to destinations registered once per socket. The
// send is synchronous: when it returns, the kernel has the bytes (or this module has a copy,
// queued until the socket is writable again), so the caller may overwrite that memory at once.
//
// Sockets are made, bound, connected and joined to groups by node:dgram; this module works on
// their descriptors (no duplicate: 10,000 segments must fit in 20,000 of them). node:dgram no
// longer reads a socket attached here (the caller stops it) and never sends on it, so the loop
// watches the descriptor through this module's poll handle alone; the port is closed before
// node:dgram closes the socket.
//
// A runtime without libuv poll handles (Bun) cannot watch a descriptor for us, and its
// node:dgram cannot stop reading one. There the caller takes the socket over (takeSocket: a
// duplicate, then node:dgram's socket is closed) and attaches it in thread mode: one watcher
// thread per environment waits in epoll (one-shot) and only says "readable" or "writable" through
// a thread-safe function; the reads, the sends and the arena stay on the JS thread, as with libuv.
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SLOTS 1024
// messages per sendmmsg: the most one call takes (UIO_MAXIOV), so a packet sent to 1,000 destinations costs one
#define SEND_CHUNK 1024
// A wakeup reads at most this many batches before letting the loop serve other sockets and timers.
#define ROUNDS_PER_WAKE 8
// A segment's sockets read together (setGroup: its media socket and its legs'), at most this many.
#define GROUP_MAX 8
// A datagram that waited this long in the kernel means the loop stalled: a grouped port's wakeup
// then reads the whole group and hands the packets over in the kernel's arrival order.
#define STALE_NS 1000000
// A merge reads on past ROUNDS_PER_WAKE batches only to keep the order, up to this many.
#define MERGE_ROUNDS_MAX 64
// Most packets one socket keeps while it cannot send (then the sends are refused: backpressure).
#define QUEUE_PACKETS 4096
// the sender's RTP and RTCP, then RTP and RTCP of each of a segment's at most 4096 destinations
#define MAX_PEERS (2 + 2 * 4096)
// meta words per received packet: length, truncated, family (4 or 6), port, address words [4], IPv6 scope id,
// the kernel's receive time (SO_TIMESTAMPNS, CLOCK_REALTIME): seconds (low 32 bits) and nanoseconds; 0, 0 when absent
#define META_STRIDE 11
// room for one SCM_TIMESTAMPNS control message per received packet
#define CONTROL_BYTES CMSG_SPACE(sizeof(struct timespec))
// UDP generic segmentation offload (Linux 4.18): one message carries up to GSO_SEGMENTS datagrams
// of one size to one destination (the last may be shorter), GSO_BYTES in all (under an IP
// packet's 65,535, headers included); the kernel cuts them apart after the IP stack, or the NIC does.
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#define GSO_SEGMENTS 64
#define GSO_BYTES 65000
#define GSO_CONTROL CMSG_SPACE(sizeof(uint16_t))

// The last send call's outcome, in a caller-given Int32Array: packets sent, queued, refused for
// backpressure, failed; and the messages the kernel took for those sent (fewer with GSO).
enum { RESULT_SENT, RESULT_QUEUED, RESULT_BACKPRESSURE, RESULT_FAILED, RESULT_MESSAGES, RESULT_WORDS };
// Behind them, the wall clock (s, ns) when the packets a callback hands over went to JS: with each
// packet's kernel receive time it says how long the packet waited before the chain saw it.
enum { CLOCK_S = RESULT_WORDS, CLOCK_NS, ARENA_RESULT_WORDS };

// A destination's address as a send passes it to the kernel (see send_batch).
typedef union {
  struct sockaddr_in v4;
  struct sockaddr_in6 v6;
} SendName;

// One message of a send: consecutive packets to one peer, `count` of them, all `seg` bytes long
// but the last (which closes the run when shorter). Without GSO every packet is a run of one.
typedef struct {
  int32_t peer;
  uint32_t seg;
  uint32_t count;
  uint32_t bytes;
  uint32_t first;  // its packets' iovecs start here in send_iovs
  uint32_t filled;
  int closed;
} Run;

// The arenas of workers the main thread may terminate, by owner (the worker's keepOwner): the
// main thread tells one to stop reading (stopReading) before it terminates that worker.
struct Owned {
  int32_t owner;
  atomic_int stopping;
  struct Owned* next;
};

typedef struct {
  uint8_t* data;
  int32_t* meta;
  int32_t* result;
  uint32_t slot_size;
  uint32_t slots;
  struct mmsghdr* msgs;
  struct iovec* iovs;
  struct sockaddr_storage* names;
  uint8_t* control;
  // a send chunk: per run its message, address and GSO control message; per packet its iovec
  // (a run's side by side) and entry index in that order; per packet in the caller's order its
  // entry and run
  struct mmsghdr send_msgs[SEND_CHUNK];
  SendName send_names[SEND_CHUNK];
  uint8_t send_control[SEND_CHUNK][GSO_CONTROL];
  Run runs[SEND_CHUNK];
  struct iovec send_iovs[SEND_CHUNK];
  uint32_t send_entry[SEND_CHUNK];
  uint32_t chunk_entry[SEND_CHUNK];
  uint16_t chunk_run[SEND_CHUNK];
  napi_ref keep[3];
  int in_callback;  // a callback of this arena is running: its packets are in the slots
  struct Owned* owned;  // setArenaOwner: the worker it belongs to, which stopReading can stop
} Arena;

typedef struct {
  uint8_t* data;
  uint32_t length;
  int32_t peer;
} Queued;

typedef struct Group Group;

typedef struct Port {
  napi_env env;
  int fd;
  uv_poll_t poll;
  Arena* arena;
  napi_ref arena_ref;
  napi_ref callback;
  napi_ref resource;
  napi_async_context async;
  int polled;
  napi_async_cleanup_hook_handle cleanup;
  struct sockaddr_storage* peers;
  socklen_t* peer_len;
  uint32_t peer_cap;
  Queued* queue;
  uint32_t q_head;
  uint32_t q_count;
  int watching;
  int closing;
  // closed: its resources are released; orphaned: JS no longer holds it. Freed when both.
  int closed;
  int orphaned;
  int receiving;
  double recv_errors;
  // thread mode (threaded): the watcher's wakeups not yet handled on the JS thread, and the
  // epoll events they carry; both under the watcher's lock. The port is freed only at pending 0.
  int threaded;
  int pending;
  uint32_t ready;
  uint64_t key;  // its watcher slot and that slot's generation: what epoll hands back
  // an IPv4 socket that sends to its peer table with DF set (see send_unfragmented)
  int df;
  // UDP GSO on (setSegmentation), the largest packet it still tries it for (lowered when the
  // kernel refuses a size: larger than the path's MTU), and per peer (index + 1) its open run in
  // the chunk being built
  int gso;
  uint32_t gso_max;
  int32_t* open_run;
  uint32_t open_cap;
  Group* group;  // setGroup: the sockets read with this one after a stall; left when the port closes
} Port;

// Ports read together after a stall. A port leaves at its close; the last one out frees it.
struct Group {
  Port* members[GROUP_MAX];
  uint32_t count;
};

// A threaded port as the watcher finds it: epoll hands back a slot and generation, never a
// pointer, so a wakeup that raced with the port's close finds an empty or newer slot.
typedef struct {
  Port* port;
  uint32_t gen;
} WatchSlot;

// The watcher thread of one environment (thread mode), made at its first threaded port.
typedef struct {
  int epfd;
  int stopfd;
  pthread_t thread;
  pthread_mutex_t lock;  // the slots, and every port's pending/ready/closing as the thread sees them
  napi_threadsafe_function wake;
  WatchSlot* slots;
  uint32_t cap;
  uint32_t* free_slots;
  uint32_t free_count;
} Watcher;

#define STOP_KEY UINT64_MAX

#define CHECK(call)                                          \
  do {                                                       \
    if ((call) != napi_ok) return throw_last(env, #call);    \
  } while (0)

static napi_value throw_last(napi_env env, const char* what) {
  const napi_extended_error_info* info = NULL;
  napi_get_last_error_info(env, &info);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, NULL, info && info->error_message ? info->error_message : what);
  return NULL;
}

static int typed_array(napi_env env, napi_value v, napi_typedarray_type want, void** data, size_t* length) {
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return 0;
  napi_typedarray_type type;
  napi_value buffer;
  size_t offset;
  if (napi_get_typedarray_info(env, v, &type, length, data, &buffer, &offset) != napi_ok) return 0;
  return want == (napi_typedarray_type)-1 || type == want;
}

static void forget_owned(struct Owned* o);

static void arena_finalize(napi_env env, void* data, void* hint) {
  Arena* a = data;
  if (a->owned) forget_owned(a->owned);
  for (int i = 0; i < 3; i++) napi_delete_reference(env, a->keep[i]);
  free(a->msgs);
  free(a->iovs);
  free(a->names);
  free(a->control);
  free(a);
}

// createArena(data: Uint8Array, meta: Int32Array, slotSize: number, result: Int32Array): Arena
static napi_value create_arena(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *data, *meta, *result;
  size_t data_len, meta_len, result_len;
  uint32_t slot_size;
  if (argc < 4 || !typed_array(env, argv[0], napi_uint8_array, &data, &data_len) ||
      !typed_array(env, argv[1], napi_int32_array, &meta, &meta_len) ||
      napi_get_value_uint32(env, argv[2], &slot_size) != napi_ok ||
      !typed_array(env, argv[3], napi_int32_array, &result, &result_len) || result_len < ARENA_RESULT_WORDS) {
    napi_throw_type_error(env, NULL, "createArena(data: Uint8Array, meta: Int32Array, slotSize, result: Int32Array(7))");
    return NULL;
  }
  uint32_t slots = slot_size == 0 ? 0 : (uint32_t)(data_len / slot_size);
  if (slots == 0 || slots > MAX_SLOTS || meta_len < (size_t)slots * META_STRIDE) {
    napi_throw_range_error(env, NULL, "createArena: 1..1024 slots, and meta needs 11 words per slot");
    return NULL;
  }
  Arena* a = calloc(1, sizeof *a);
  if (a) {
    a->msgs = calloc(slots, sizeof *a->msgs);
    a->iovs = calloc(slots, sizeof *a->iovs);
    a->names = calloc(slots, sizeof *a->names);
    a->control = calloc(slots, CONTROL_BYTES);
  }
  if (!a || !a->msgs || !a->iovs || !a->names || !a->control) {
    if (a) arena_finalize(env, a, NULL);
    napi_throw_error(env, NULL, "createArena: out of memory");
    return NULL;
  }
  a->data = data;
  a->meta = meta;
  a->result = result;
  a->slot_size = slot_size;
  a->slots = slots;
  for (uint32_t i = 0; i < slots; i++) {
    a->iovs[i].iov_base = a->data + (size_t)i * slot_size;
    a->iovs[i].iov_len = slot_size;
    a->msgs[i].msg_hdr.msg_iov = &a->iovs[i];
    a->msgs[i].msg_hdr.msg_iovlen = 1;
    a->msgs[i].msg_hdr.msg_name = &a->names[i];
  }
  for (int i = 0; i < 3; i++) CHECK(napi_create_reference(env, argv[i == 2 ? 3 : i], 1, &a->keep[i]));
  napi_value out;
  CHECK(napi_create_external(env, a, arena_finalize, NULL, &out));
  return out;
}

static void on_poll(uv_poll_t* handle, int status, int events);

static Watcher* watcher_of(napi_env env);

static void restart_poll(Port* p) {
  if (!p->polled) return;  // a send-only port: the caller retries its queue with flush()
  if (p->threaded) {
    uint32_t events = (p->receiving ? EPOLLIN : 0) | (p->q_count > 0 ? EPOLLOUT : 0);
    if (p->closing || (uint32_t)p->watching == events) return;
    p->watching = (int)events;
    // one-shot even with no events: a pending socket error then wakes the watcher once, not forever
    struct epoll_event ev = {.events = events | EPOLLONESHOT, .data.u64 = p->key};
    epoll_ctl(watcher_of(p->env)->epfd, EPOLL_CTL_MOD, p->fd, &ev);
    return;
  }
  int events = (p->receiving ? UV_READABLE : 0) | (p->q_count > 0 ? UV_WRITABLE : 0);
  if (p->closing || p->watching == events) return;
  p->watching = events;
  if (events == 0) uv_poll_stop(&p->poll);
  else uv_poll_start(&p->poll, events, on_poll);
}

static int would_block(int err) {
  return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS;
}

static void drop_queue(Port* p) {
  while (p->q_count > 0) {
    free(p->queue[p->q_head].data);
    p->q_head = (p->q_head + 1) % QUEUE_PACKETS;
    p->q_count--;
  }
}

static int send_fragmentable(Port* p, struct msghdr* m);

// Sends what waits in the queue, in order, until the socket would block again.
static void flush_queue(Port* p) {
  while (p->q_count > 0) {
    Queued* q = &p->queue[p->q_head];
    struct iovec iov = {q->data, q->length};
    struct msghdr m = {0};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    if (q->peer >= 0) {
      m.msg_name = &p->peers[q->peer];
      m.msg_namelen = p->peer_len[q->peer];
    }
    if (sendmsg(p->fd, &m, MSG_DONTWAIT) < 0) {
      if (errno == EINTR) continue;
      if (would_block(errno)) break;
      if (errno == EMSGSIZE && p->df && send_fragmentable(p, &m) != 0 && would_block(errno)) break;
      // anything else loses this one packet only (it was counted as queued, not as failed)
    }
    free(q->data);
    p->q_head = (p->q_head + 1) % QUEUE_PACKETS;
    p->q_count--;
  }
  restart_poll(p);
}

// Hands packets first .. first + count - 1 of the arena to the port's callback: onBatch(count, first).
static void call_js(Port* p, uint32_t first, uint32_t count) {
  napi_env env = p->env;
  napi_value cb, recv, args[2], ignored;
  if (napi_get_reference_value(env, p->callback, &cb) != napi_ok || cb == NULL) return;
  if (napi_get_reference_value(env, p->resource, &recv) != napi_ok || recv == NULL) return;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  p->arena->result[CLOCK_S] = (int32_t)(uint32_t)now.tv_sec;
  p->arena->result[CLOCK_NS] = (int32_t)now.tv_nsec;
  napi_create_uint32(env, count, &args[0]);
  napi_create_uint32(env, first, &args[1]);
  p->arena->in_callback++;
  napi_status status = napi_make_callback(env, p->async, recv, cb, 2, args, &ignored);
  p->arena->in_callback--;
  if (status == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);  // the process's uncaughtException, as from any other callback
  }
}

// Reads at most `max` datagrams into arena slots first .. first + max - 1, their metadata beside
// them; returns how many (0: none waiting, or the socket reported an error, counted).
static uint32_t read_batch(Port* p, uint32_t first, uint32_t max) {
  Arena* a = p->arena;
  for (uint32_t i = first; i < first + max; i++) {
    a->msgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
    a->msgs[i].msg_hdr.msg_control = a->control + (size_t)i * CONTROL_BYTES;
    a->msgs[i].msg_hdr.msg_controllen = CONTROL_BYTES;
  }
  int n;
  for (int errors = 0;;) {
    n = recvmmsg(p->fd, a->msgs + first, max, MSG_DONTWAIT, NULL);
    if (n >= 0) break;
    if (errno == EINTR) continue;
    if (would_block(errno)) return 0;
    // an ICMP error reported on this socket (a connected peer's port was closed): the datagrams
    // behind it are read by the next call
    p->recv_errors++;
    if (++errors == ROUNDS_PER_WAKE) return 0;
  }
  for (uint32_t i = first; i < first + (uint32_t)n; i++) {
    int32_t* m = a->meta + (size_t)i * META_STRIDE;
    struct mmsghdr* h = &a->msgs[i];
    m[0] = (int32_t)(h->msg_len > a->slot_size ? a->slot_size : h->msg_len);
    m[1] = (h->msg_hdr.msg_flags & MSG_TRUNC) ? 1 : 0;
    const struct sockaddr_storage* from = &a->names[i];
    if (from->ss_family == AF_INET6) {
      const struct sockaddr_in6* s6 = (const void*)from;
      m[2] = 6;
      m[3] = ntohs(s6->sin6_port);
      memcpy(&m[4], &s6->sin6_addr, 16);
      m[8] = (int32_t)s6->sin6_scope_id;
    } else {
      const struct sockaddr_in* s4 = (const void*)from;
      m[2] = 4;
      m[3] = ntohs(s4->sin_port);
      memcpy(&m[4], &s4->sin_addr, 4);
      m[5] = m[6] = m[7] = m[8] = 0;
    }
    m[9] = m[10] = 0;
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&h->msg_hdr); c; c = CMSG_NXTHDR(&h->msg_hdr, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
        struct timespec ts;
        memcpy(&ts, CMSG_DATA(c), sizeof ts);
        m[9] = (int32_t)(uint32_t)ts.tv_sec;
        m[10] = (int32_t)ts.tv_nsec;
      }
    }
  }
  return (uint32_t)n;
}

// The kernel's receive time of arena slot i, in ns (0 when the kernel gave none).
static int64_t arrival_ns(const Arena* a, uint32_t i) {
  const int32_t* m = a->meta + (size_t)i * META_STRIDE;
  return (int64_t)(uint32_t)m[9] * 1000000000 + m[10];
}

// Its worker is being terminated (stopReading): what its sockets hold stays there for the next
// worker. Checked before every read: a callback that returns because the thread is ending (the
// watchdog ended a stuck filter, a crash) must not be followed by reads whose packets reach no JS.
static int arena_stopping(const Arena* a) {
  return a->owned && atomic_load(&a->owned->stopping);
}

// Reads up to `rounds` full batches of a port's socket, one callback each; true when the last
// filled the arena (the socket may hold more).
static int receive_rounds(Port* p, int rounds) {
  Arena* a = p->arena;
  for (int round = 0; round < rounds && !p->closing && p->receiving && !arena_stopping(a); round++) {
    uint32_t n = read_batch(p, 0, a->slots);
    if (n == 0) return 0;
    call_js(p, 0, n);
    if (n < a->slots) return 0;
  }
  return !p->closing && p->receiving;
}

// A group's socket as a merge reads it: its share of the arena, what was read there, what was handed over.
typedef struct {
  Port* port;
  uint32_t base;
  uint32_t count;
  uint32_t next;
  int more;  // the last read filled the share: the socket may hold more
} Lane;

// A lane's packets already read go to JS unless its port closed; it is read again only while it receives.
static int lane_live(const Lane* l) {
  return !l->port->closing;
}

static int lane_readable(const Lane* l) {
  return !l->port->closing && l->port->receiving && !arena_stopping(l->port->arena);
}

static Watcher* watcher_of(napi_env env);

// Keeps a port from being freed while a merge holds it (a callback may close it, and a finalizer
// run inside a later callback would then free it): counted in `pending`, as a queued wakeup is.
static void hold_port(Port* p) {
  Watcher* w = p->threaded ? watcher_of(p->env) : NULL;
  if (w) pthread_mutex_lock(&w->lock);
  p->pending++;
  if (w) pthread_mutex_unlock(&w->lock);
}

static void release_port(Port* p) {
  Watcher* w = p->threaded ? watcher_of(p->env) : NULL;
  if (w) pthread_mutex_lock(&w->lock);
  int left = --p->pending;
  if (w) pthread_mutex_unlock(&w->lock);
  if (left == 0 && p->closed && p->orphaned) free(p);
}

// After a stall every socket of the group has a backlog: reads them all (each into its share of
// the arena) and hands the packets over in the kernel's arrival order, a run of one socket's per
// callback. Read one socket after another, a leg's few packets (FEC repair) would reach the chain
// ahead of the media backlog they follow, or behind all of it. After ROUNDS_PER_WAKE batches' worth
// a socket is read again only while another's packets already read wait behind what it may hold.
// The woken port (member `w`) has read `woken_count` into its share already; w = -1: none has.
// Returns true when the budget ended it while a socket may hold more.
static int receive_merged(Group* g, int w, uint32_t woken_count) {
  Arena* a = g->members[0]->arena;
  uint32_t k = g->count;
  uint32_t share = a->slots / k;
  Lane lanes[GROUP_MAX];
  for (uint32_t i = 0; i < k; i++) {
    lanes[i] = (Lane){g->members[i], i * share, 0, 0, 1};
    hold_port(lanes[i].port);
  }
  if (w >= 0) {
    lanes[w].count = woken_count;
    lanes[w].more = woken_count == share;
  }
  int64_t budget = (int64_t)ROUNDS_PER_WAKE * a->slots - woken_count;
  for (;;) {
    uint32_t waiting = 0;  // lanes with packets read and not yet handed over
    for (uint32_t i = 0; i < k; i++) waiting += lanes[i].next < lanes[i].count && lane_live(&lanes[i]);
    for (uint32_t i = 0; i < k; i++) {
      Lane* l = &lanes[i];
      // past the budget, read on only for the order of packets already read (a backlog read
      // faster than it grows ends; MERGE_ROUNDS_MAX batches' worth in all, whatever comes)
      if (l->next < l->count || !l->more || !lane_readable(l) || (budget <= 0 && (waiting == 0 || budget <= -(int64_t)(MERGE_ROUNDS_MAX - ROUNDS_PER_WAKE) * a->slots))) continue;
      l->count = read_batch(l->port, l->base, share);
      l->next = 0;
      l->more = l->count == share;
      budget -= l->count;
    }
    // the lane whose next packet arrived first, and the earliest next arrival among the others
    int best = -1;
    for (uint32_t i = 0; i < k; i++) {
      Lane* l = &lanes[i];
      if (l->next >= l->count || !lane_live(l)) continue;
      if (best < 0 || arrival_ns(a, l->base + l->next) < arrival_ns(a, lanes[best].base + lanes[best].next)) best = (int)i;
    }
    if (best < 0) break;
    int64_t until = INT64_MAX;
    for (uint32_t i = 0; i < k; i++) {
      Lane* l = &lanes[i];
      if ((int)i != best && l->next < l->count && lane_live(l)) {
        int64_t t = arrival_ns(a, l->base + l->next);
        if (t < until) until = t;
      }
    }
    Lane* b = &lanes[best];
    uint32_t end = b->next + 1;
    while (end < b->count && arrival_ns(a, b->base + end) <= until) end++;
    call_js(b->port, b->base + b->next, end - b->next);
    b->next = end;
  }
  int more = 0;
  for (uint32_t i = 0; i < k; i++) {
    more |= lanes[i].more && lane_readable(&lanes[i]);
    release_port(lanes[i].port);
  }
  return more;
}

static void receive(Port* p) {
  Arena* a = p->arena;
  napi_handle_scope scope;
  if (napi_open_handle_scope(p->env, &scope) != napi_ok) return;
  Group* g = p->group;
  if (g && g->count > 1 && !p->closing && p->receiving) {
    // a grouped port reads into its share first: packets that waited long say the loop stalled
    int w = 0;
    while (g->members[w] != p) w++;
    uint32_t share = a->slots / g->count;
    uint32_t n = read_batch(p, (uint32_t)w * share, share);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t arrived = arrival_ns(a, (uint32_t)w * share);  // 0: the kernel gave no time, no sign of a stall
    int64_t waited = ((int64_t)now.tv_sec * 1000000000 + now.tv_nsec) - arrived;
    if (n > 0 && arrived > 0 && waited > STALE_NS) {
      receive_merged(g, w, n);
    } else if (n > 0) {
      call_js(p, (uint32_t)w * share, n);
      if (n == share) receive_rounds(p, ROUNDS_PER_WAKE - 1);
    }
  } else {
    receive_rounds(p, ROUNDS_PER_WAKE);
  }
  napi_close_handle_scope(p->env, scope);
}

static void on_poll(uv_poll_t* handle, int status, int events) {
  Port* p = handle->data;
  if (p->closing) return;
  if (status < 0) {
    // libuv stopped the handle on POLLERR: a pending socket error, such as an ICMP port
    // unreachable on a connected socket. Reading SO_ERROR clears it; then the socket is watched again.
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    p->recv_errors++;
    p->watching = 0;
    restart_poll(p);
    return;
  }
  if (events & UV_WRITABLE) flush_queue(p);
  if (events & UV_READABLE) {
    if (arena_stopping(p->arena)) {
      // its worker is being terminated: what the socket holds stays there for the next worker
      // (the loop still runs once as the thread ends, and a read now could not reach JS)
      p->receiving = 0;
      restart_poll(p);
      return;
    }
    receive(p);
  }
}

// ---- thread mode: the watcher ----

static Watcher* watcher_of(napi_env env) {
  void* data = NULL;
  napi_get_instance_data(env, &data);
  return data;
}

static void* watch_loop(void* arg) {
  Watcher* w = arg;
  struct epoll_event events[64];
  for (;;) {
    int n = epoll_wait(w->epfd, events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return NULL;
    }
    for (int i = 0; i < n; i++) {
      uint64_t key = events[i].data.u64;
      if (key == STOP_KEY) return NULL;
      uint32_t slot = (uint32_t)(key >> 32);
      pthread_mutex_lock(&w->lock);
      Port* p = slot < w->cap && w->slots[slot].gen == (uint32_t)key ? w->slots[slot].port : NULL;
      if (p && !p->closing) {
        p->pending++;  // the port outlives the wakeup: freed only once pending is back at 0
        p->ready |= events[i].events;
      } else {
        p = NULL;
      }
      pthread_mutex_unlock(&w->lock);
      if (p && napi_call_threadsafe_function(w->wake, p, napi_tsfn_nonblocking) != napi_ok) {
        pthread_mutex_lock(&w->lock);  // the environment is going away: nothing will handle it
        p->pending--;
        pthread_mutex_unlock(&w->lock);
      }
    }
  }
}

// On the JS thread: what the watcher saw on a port, handled as on_poll handles libuv's events.
static void on_ready(napi_env env, napi_value js_callback, void* context, void* data) {
  Watcher* w = context;
  Port* p = data;
  pthread_mutex_lock(&w->lock);
  uint32_t events = p->ready;
  p->ready = 0;
  pthread_mutex_unlock(&w->lock);
  if (env != NULL && !p->closing) {
    p->watching = -1;  // the one-shot fired: nothing is watched until restart_poll arms it again
    if ((events & EPOLLERR) && !(events & EPOLLIN)) {
      // a pending socket error (an ICMP port unreachable on a connected socket): reading it clears it
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len);
      p->recv_errors++;
    }
    if (events & EPOLLOUT) flush_queue(p);
    if ((events & EPOLLIN) && !p->closing) receive(p);
    restart_poll(p);
  }
  pthread_mutex_lock(&w->lock);
  int left = --p->pending;
  pthread_mutex_unlock(&w->lock);
  if (left == 0 && p->closed && p->orphaned) free(p);
}

static void stop_watcher(napi_env env, void* data, void* hint) {
  Watcher* w = data;
  if (w->thread) {
    uint64_t one = 1;
    if (write(w->stopfd, &one, sizeof one) == sizeof one) pthread_join(w->thread, NULL);
  }
  if (w->wake) napi_release_threadsafe_function(w->wake, napi_tsfn_abort);
  if (w->epfd >= 0) close(w->epfd);
  if (w->stopfd >= 0) close(w->stopfd);
  pthread_mutex_destroy(&w->lock);
  free(w->slots);
  free(w->free_slots);
  free(w);
}

// The environment's watcher, started at the first call; NULL with `why` filled when it cannot be.
static Watcher* start_watcher(napi_env env, char* why, size_t why_len) {
  Watcher* w = watcher_of(env);
  if (w) return w;
  w = calloc(1, sizeof *w);
  if (!w) {
    snprintf(why, why_len, "out of memory");
    return NULL;
  }
  pthread_mutex_init(&w->lock, NULL);
  w->epfd = epoll_create1(EPOLL_CLOEXEC);
  w->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  struct epoll_event stop = {.events = EPOLLIN, .data.u64 = STOP_KEY};
  napi_value name;
  napi_create_string_utf8(env, "msm:udp-watcher", NAPI_AUTO_LENGTH, &name);
  if (w->epfd < 0 || w->stopfd < 0 || epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->stopfd, &stop) != 0) {
    snprintf(why, why_len, "epoll: %s", strerror(errno));
  } else if (napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, w, on_ready, &w->wake) != napi_ok) {
    snprintf(why, why_len, "no thread-safe functions on this runtime");
  } else if (pthread_create(&w->thread, NULL, watch_loop, w) != 0) {
    w->thread = 0;
    snprintf(why, why_len, "cannot start the watcher thread");
  } else if (napi_set_instance_data(env, w, stop_watcher, NULL) != napi_ok) {
    snprintf(why, why_len, "cannot keep the watcher with the environment");
  } else {
    napi_unref_threadsafe_function(env, w->wake);  // the sockets, not the watcher, keep a process alive
    return w;
  }
  stop_watcher(env, w, NULL);
  return NULL;
}

// Gives a port a slot of the watcher and adds its descriptor, watching nothing yet.
static int watch_port(Watcher* w, Port* p, char* why, size_t why_len) {
  pthread_mutex_lock(&w->lock);
  if (w->free_count == 0) {
    uint32_t cap = w->cap ? w->cap * 2 : 64;
    WatchSlot* slots = realloc(w->slots, cap * sizeof *slots);
    if (slots) w->slots = slots;
    uint32_t* free_slots = realloc(w->free_slots, cap * sizeof *free_slots);
    if (free_slots) w->free_slots = free_slots;
    if (!slots || !free_slots) {
      pthread_mutex_unlock(&w->lock);
      snprintf(why, why_len, "out of memory");
      return 0;
    }
    for (uint32_t i = w->cap; i < cap; i++) {
      w->slots[i].port = NULL;
      w->slots[i].gen = 0;
      w->free_slots[w->free_count++] = cap - 1 - (i - w->cap);
    }
    w->cap = cap;
  }
  uint32_t slot = w->free_slots[--w->free_count];
  p->key = ((uint64_t)slot << 32) | w->slots[slot].gen;
  struct epoll_event ev = {.events = EPOLLONESHOT, .data.u64 = p->key};
  if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, p->fd, &ev) != 0) {
    w->free_slots[w->free_count++] = slot;
    pthread_mutex_unlock(&w->lock);
    snprintf(why, why_len, "epoll: %s", strerror(errno));
    return 0;
  }
  w->slots[slot].port = p;
  pthread_mutex_unlock(&w->lock);
  return 1;
}

static void start_close(Port* p);

static void leave_group(Port* p) {
  Group* g = p->group;
  if (!g) return;
  uint32_t i = 0;
  while (g->members[i] != p) i++;
  memmove(&g->members[i], &g->members[i + 1], (g->count - i - 1) * sizeof(Port*));
  g->members[--g->count] = NULL;
  p->group = NULL;
  if (g->count == 0) free(g);
}

static void on_closed(uv_handle_t* handle) {
  Port* p = handle->data;
  napi_env env = p->env;
  drop_queue(p);
  if (p->callback) napi_delete_reference(env, p->callback);
  if (p->resource) napi_delete_reference(env, p->resource);
  if (p->arena_ref) napi_delete_reference(env, p->arena_ref);
  if (p->async) napi_async_destroy(env, p->async);
  if (p->cleanup) napi_remove_async_cleanup_hook(p->cleanup);
  leave_group(p);
  free(p->queue);
  free(p->peers);
  free(p->peer_len);
  free(p->open_run);
  p->queue = NULL;
  p->peers = NULL;
  p->peer_len = NULL;
  p->q_count = 0;
  p->closed = 1;
  if (p->orphaned && p->pending == 0) free(p);
}

// JS dropped the port: freed now if it was closed, else once its close completes (never while
// JS could still pass it in: a closed port stays a valid "port closed" error until then).
static void port_finalize(napi_env env, void* data, void* hint) {
  Port* p = data;
  p->orphaned = 1;
  if (p->closed) {
    if (p->pending == 0) free(p);
  } else {
    start_close(p);
  }
}

static void start_close(Port* p) {
  if (p->closing) return;
  if (p->threaded) {
    Watcher* w = watcher_of(p->env);
    // after this the watcher makes no new wakeup for the port; those queued see it closing
    pthread_mutex_lock(&w->lock);
    p->closing = 1;
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, p->fd, NULL);
    uint32_t slot = (uint32_t)(p->key >> 32);
    w->slots[slot].port = NULL;
    w->slots[slot].gen++;
    w->free_slots[w->free_count++] = slot;
    pthread_mutex_unlock(&w->lock);
    on_closed((uv_handle_t*)&p->poll);
    return;
  }
  p->closing = 1;
  if (p->polled) {
    uv_poll_stop(&p->poll);
    uv_close((uv_handle_t*)&p->poll, on_closed);
  } else {
    on_closed((uv_handle_t*)&p->poll);
  }
}

// The environment (a worker thread) is going away with the socket still open.
static void on_env_cleanup(napi_async_cleanup_hook_handle handle, void* arg) {
  start_close(arg);
}

static Port* port_of(napi_env env, napi_value v) {
  void* data = NULL;
  if (napi_get_value_external(env, v, &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, NULL, "not a port");
    return NULL;
  }
  Port* p = data;
  if (p->closing) {
    napi_throw_error(env, NULL, "port closed");
    return NULL;
  }
  return p;
}

// The port of a call whose only argument is a port, closed or not (NULL with a JS exception
// pending when it is not one; `usage` names the call).
static Port* any_port_call(napi_env env, napi_callback_info info, const char* usage) {
  size_t argc = 1;
  napi_value argv[1];
  void* data = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_external(env, argv[0], &data) != napi_ok || !data) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  return data;
}

// The arguments of a call whose first is an open port: `want` of them into argv, and the port
// (NULL with a JS exception pending when they are not there or the port is closed).
static Port* port_call(napi_env env, napi_callback_info info, size_t want, napi_value* argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    throw_last(env, "napi_get_cb_info");
    return NULL;
  }
  if (argc < want) {
    napi_throw_type_error(env, NULL, "missing arguments");
    return NULL;
  }
  return port_of(env, argv[0]);
}

// attach(fd: number, arena: Arena, onBatch: ((count: number, first: number) => void) | null, thread?: boolean): Port
// With a callback every batch read goes to it (first: its first slot, 0 but for a group's ports), the socket watched on the runtime's libuv loop or,
// with `thread`, by the environment's watcher thread (a runtime without libuv poll handles: Bun;
// the descriptor must then be this module's alone: takeSocket). With null the port only sends,
// and packets the socket could not take wait until flush(port).
static napi_value attach(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  Arena* a = NULL;
  napi_valuetype cb_type = napi_undefined;
  bool threaded = false;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_external(env, argv[1], (void**)&a) != napi_ok ||
      a == NULL || napi_typeof(env, argv[2], &cb_type) != napi_ok || (cb_type != napi_function && cb_type != napi_null) ||
      (argc > 3 && napi_get_value_bool(env, argv[3], &threaded) != napi_ok)) {
    napi_throw_type_error(env, NULL, "attach(fd, arena, onBatch | null, thread?: boolean)");
    return NULL;
  }
  int own = fd;
  Port* p = calloc(1, sizeof *p);  // its queue is made when first needed: 10,000 idle sockets keep none
  if (!p) {
    napi_throw_error(env, NULL, "attach: out of memory");
    return NULL;
  }
  p->env = env;
  p->fd = own;
  p->arena = a;
  p->poll.data = p;
  if (cb_type == napi_function && threaded) {
    char why[100] = "";
    Watcher* w = start_watcher(env, why, sizeof why);
    if (!w || !watch_port(w, p, why, sizeof why)) {
      free(p);
      char text[160];
      snprintf(text, sizeof text, "attach: cannot watch the socket from a thread (%s)", why);
      napi_throw_error(env, NULL, text);
      return NULL;
    }
    p->threaded = 1;
    p->polled = 1;
  } else if (cb_type == napi_function) {
    uv_loop_t* loop;
    int err = 0;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || (err = uv_poll_init(loop, &p->poll, own)) != 0) {
      free(p);
      char text[120];
      snprintf(text, sizeof text, "attach: cannot watch the socket on this runtime's event loop (%s)", err ? uv_strerror(err) : "no loop");
      napi_throw_error(env, NULL, text);
      return NULL;
    }
    p->polled = 1;
  }
  if (cb_type == napi_function) {
    // the kernel stamps each datagram as it arrives: the stats' arrival times do not wait for the loop
    int on = 1;
    setsockopt(own, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
    napi_value name, resource;
    napi_create_reference(env, argv[2], 1, &p->callback);
    napi_create_object(env, &resource);
    napi_create_reference(env, resource, 1, &p->resource);
    napi_create_string_utf8(env, "msm:udp", NAPI_AUTO_LENGTH, &name);
    napi_async_init(env, resource, name, &p->async);
    napi_add_async_cleanup_hook(env, on_env_cleanup, p, &p->cleanup);
    p->receiving = 1;
  }
  napi_create_reference(env, argv[1], 1, &p->arena_ref);
  restart_poll(p);
  napi_value out;
  CHECK(napi_create_external(env, p, port_finalize, NULL, &out));
  return out;
}

// flush(port): sends what waits in the queue (a send-only port's retry); returns what still waits.
static napi_value flush(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  Port* p = port_call(env, info, 1, argv);
  if (!p) return NULL;
  flush_queue(p);
  napi_value out;
  napi_create_uint32(env, p->q_count, &out);
  return out;
}

// A port that sends to its peer table sends unconnected: for each IPv4 datagram without DF the
// kernel draws an IP ID from its shared, hashed generator (__ip_select_ident, about a tenth of the
// kernel's time per datagram in a fan-out). With DF set (IP_PMTUDISC_DO) the ID is 0 and that work
// is skipped. A datagram larger than the path's MTU is then refused (EMSGSIZE) and sent again,
// fragmented as before, by send_fragmentable: what arrives is what arrived without DF.
static void send_unfragmented(Port* p) {
  if (p->df) return;
  int domain = 0;
  socklen_t len = sizeof domain;
  if (getsockopt(p->fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_INET) return;
  int v = IP_PMTUDISC_DO;
  if (setsockopt(p->fd, IPPROTO_IP, IP_MTU_DISCOVER, &v, sizeof v) == 0) p->df = 1;
}

// One datagram the MTU refused with DF set: sent with fragmentation allowed, as without DF.
static int send_fragmentable(Port* p, struct msghdr* m) {
  int want = IP_PMTUDISC_WANT, df = IP_PMTUDISC_DO;
  if (setsockopt(p->fd, IPPROTO_IP, IP_MTU_DISCOVER, &want, sizeof want) != 0) return -1;
  ssize_t n;
  do n = sendmsg(p->fd, m, MSG_DONTWAIT); while (n < 0 && errno == EINTR);
  int err = errno;
  setsockopt(p->fd, IPPROTO_IP, IP_MTU_DISCOVER, &df, sizeof df);
  errno = err;
  return n < 0 ? -1 : 0;
}

// setPeer(port, index, address: string, port: number): boolean (false: not an address)
static napi_value set_peer(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  Port* p = port_call(env, info, 4, argv);
  if (!p) return NULL;
  uint32_t index, udp_port;
  char text[64];
  size_t len;
  if (napi_get_value_uint32(env, argv[1], &index) != napi_ok || index >= MAX_PEERS ||
      napi_get_value_string_utf8(env, argv[2], text, sizeof text, &len) != napi_ok ||
      napi_get_value_uint32(env, argv[3], &udp_port) != napi_ok || udp_port > 65535) {
    napi_throw_type_error(env, NULL, "setPeer(port, index < 8194, address, port)");
    return NULL;
  }
  if (index >= p->peer_cap) {
    uint32_t cap = p->peer_cap ? p->peer_cap : 4;
    while (cap <= index) cap *= 2;
    void* peers = realloc(p->peers, cap * sizeof *p->peers);
    if (peers) p->peers = peers;
    void* lens = realloc(p->peer_len, cap * sizeof *p->peer_len);
    if (lens) p->peer_len = lens;
    if (!peers || !lens) {
      napi_throw_error(env, NULL, "setPeer: out of memory");
      return NULL;
    }
    memset(p->peer_len + p->peer_cap, 0, (cap - p->peer_cap) * sizeof *p->peer_len);
    p->peer_cap = cap;
  }
  struct sockaddr_storage* s = &p->peers[index];
  memset(s, 0, sizeof *s);
  char* scope = strchr(text, '%');  // fe80::1%eth0
  if (scope) *scope = 0;
  struct sockaddr_in6* s6 = (void*)s;
  struct sockaddr_in* s4 = (void*)s;
  bool ok = true;
  if (inet_pton(AF_INET, text, &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)udp_port);
    p->peer_len[index] = sizeof *s4;
    send_unfragmented(p);
  } else if (inet_pton(AF_INET6, text, &s6->sin6_addr) == 1) {
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)udp_port);
    if (scope) s6->sin6_scope_id = if_nametoindex(scope + 1);
    p->peer_len[index] = sizeof *s6;
  } else {
    p->peer_len[index] = 0;
    ok = false;
  }
  napi_value out;
  napi_get_boolean(env, ok, &out);
  return out;
}

// Copies a packet the socket cannot take now; false when it does not fit (backpressure).
static bool enqueue(Port* p, const uint8_t* data, uint32_t length, int32_t peer, int32_t* result) {
  if (!p->queue) p->queue = calloc(QUEUE_PACKETS, sizeof *p->queue);
  if (!p->queue || p->q_count >= QUEUE_PACKETS) {
    result[RESULT_BACKPRESSURE]++;
    return false;
  }
  uint8_t* copy = malloc(length ? length : 1);
  if (!copy) {
    result[RESULT_BACKPRESSURE]++;
    return false;
  }
  memcpy(copy, data, length);
  Queued* q = &p->queue[(p->q_head + p->q_count) % QUEUE_PACKETS];
  q->data = copy;
  q->length = length;
  q->peer = peer;
  p->q_count++;
  result[RESULT_QUEUED]++;
  return true;
}

// The packets of runs [run, runs) from the packet `from` of the first on, in order, onto the
// socket's queue (it would block); entries that do not fit get length -1.
static void enqueue_runs(Port* p, Arena* a, uint32_t run, uint32_t from, uint32_t runs, int32_t* e, int32_t* result) {
  for (; run < runs; run++, from = 0) {
    Run* x = &a->runs[run];
    for (uint32_t s = from; s < x->count; s++) {
      struct iovec* v = &a->send_iovs[x->first + s];
      uint32_t entry = a->send_entry[x->first + s];
      if (!enqueue(p, v->iov_base, (uint32_t)v->iov_len, x->peer, result)) e[(size_t)entry * 3 + 1] = -1;
    }
  }
}

// A run the kernel refused as one GSO message, sent a datagram at a time. Returns 1 when the
// socket would block (the rest of the run is then queued), else 0.
static int send_run_singly(Port* p, Arena* a, uint32_t run, int32_t* e, int32_t* result) {
  Run* x = &a->runs[run];
  struct msghdr* whole = &a->send_msgs[run].msg_hdr;
  for (uint32_t s = 0; s < x->count; s++) {
    struct msghdr m = {0};
    m.msg_name = whole->msg_name;
    m.msg_namelen = whole->msg_namelen;
    m.msg_iov = &a->send_iovs[x->first + s];
    m.msg_iovlen = 1;
    ssize_t n;
    do n = sendmsg(p->fd, &m, MSG_DONTWAIT); while (n < 0 && errno == EINTR);
    if (n >= 0 || (errno == EMSGSIZE && p->df && send_fragmentable(p, &m) == 0)) {
      result[RESULT_SENT]++;
      result[RESULT_MESSAGES]++;
    } else if (would_block(errno)) {
      enqueue_runs(p, a, run, s, run + 1, e, result);
      return 1;
    } else {
      result[RESULT_FAILED]++;
      e[(size_t)a->send_entry[x->first + s] * 3 + 1] = -1;
    }
  }
  return 0;
}

// Makes room to remember an open run per peer (the peer table's size, plus the connected peer).
static bool open_runs_fit(Port* p) {
  if (p->open_cap >= p->peer_cap + 1) return true;
  int32_t* grown = realloc(p->open_run, (p->peer_cap + 1) * sizeof *grown);
  if (!grown) return false;
  p->open_run = grown;
  p->open_cap = p->peer_cap + 1;
  return true;
}

// send(port, memory: TypedArray, entries: Int32Array, count): number
// entries: [offset, length, peer] per packet (peer -1: the socket's connected peer). Writes the
// outcome to the arena's result array, sets the length of each entry neither sent nor queued to
// -1, and returns how many were sent or queued.
//
// With GSO on, consecutive packets of one size to one peer leave as one message; a fan-out's
// entries (each packet to every destination in turn) become a message per destination. Each
// peer's packets keep their order; across peers the order does not matter.
static napi_value send_batch(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  Port* p = port_call(env, info, 4, argv);
  if (!p) return NULL;
  void *mem, *ent;
  size_t mem_len, ent_len;
  uint32_t count;
  bool is_typed = false;
  napi_typedarray_type type;
  napi_value ab;
  size_t byte_offset;
  if (napi_is_typedarray(env, argv[1], &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, argv[1], &type, &mem_len, &mem, &ab, &byte_offset) != napi_ok || type != napi_uint8_array ||
      !typed_array(env, argv[2], napi_int32_array, &ent, &ent_len) || napi_get_value_uint32(env, argv[3], &count) != napi_ok ||
      (size_t)count * 3 > ent_len) {
    napi_throw_type_error(env, NULL, "send(port, memory: Uint8Array, entries: Int32Array, count)");
    return NULL;
  }
  Arena* a = p->arena;
  int32_t* result = a->result;
  memset(result, 0, RESULT_WORDS * sizeof *result);
  int32_t* e = ent;
  const uint8_t* bytes = mem;
  int gso = p->gso && open_runs_fit(p);
  uint32_t i = 0;
  while (i < count) {
    // one chunk of valid entries, each packet given to a run
    uint32_t k = 0, runs = 0;
    while (i < count && k < SEND_CHUNK) {
      int32_t* x = e + (size_t)i * 3;
      uint32_t entry = i++;
      int32_t off = x[0], len = x[1], peer = x[2];
      if (off < 0 || len < 0 || (size_t)off + (size_t)len > mem_len || peer >= (int32_t)p->peer_cap ||
          (peer >= 0 && p->peer_len[peer] == 0)) {
        result[RESULT_FAILED]++;
        x[1] = -1;
        continue;
      }
      if (p->q_count > 0) {  // keep the order: behind what already waits
        if (!enqueue(p, bytes + off, (uint32_t)len, peer, result)) x[1] = -1;
        continue;
      }
      uint32_t run = runs;
      if (gso) {
        // a peer's open run is one made in this chunk: a value left from an earlier chunk or call
        // is past `runs` or names a run of another peer (this peer's latest run would have replaced it)
        uint32_t open = (uint32_t)p->open_run[peer + 1];
        Run* o = open < runs ? &a->runs[open] : NULL;
        if (o && o->peer == peer && !o->closed && len > 0 && (uint32_t)len <= o->seg && o->count < GSO_SEGMENTS &&
            o->bytes + (uint32_t)len <= GSO_BYTES) {
          run = open;
        }
      }
      Run* r = &a->runs[run];
      if (run == runs) {
        runs++;
        *r = (Run){.peer = peer, .seg = (uint32_t)len};
        // a packet GSO will not carry (empty, or larger than the kernel took) ends its peer's run
        r->closed = !gso || len == 0 || (uint32_t)len > p->gso_max;
        if (gso) p->open_run[peer + 1] = (int32_t)run;
      }
      r->count++;
      r->bytes += (uint32_t)len;
      if ((uint32_t)len < r->seg) r->closed = 1;
      a->chunk_entry[k] = entry;
      a->chunk_run[k] = (uint16_t)run;
      k++;
    }
    // each run's iovecs side by side, then its message
    uint32_t first = 0;
    for (uint32_t r = 0; r < runs; r++) {
      a->runs[r].first = first;
      a->runs[r].filled = 0;
      first += a->runs[r].count;
    }
    for (uint32_t j = 0; j < k; j++) {
      Run* r = &a->runs[a->chunk_run[j]];
      uint32_t at = r->first + r->filled++;
      int32_t* x = e + (size_t)a->chunk_entry[j] * 3;
      a->send_iovs[at] = (struct iovec){(void*)(bytes + x[0]), (size_t)x[1]};
      a->send_entry[at] = a->chunk_entry[j];
    }
    for (uint32_t r = 0; r < runs; r++) {
      Run* x = &a->runs[r];
      struct mmsghdr* m = &a->send_msgs[r];
      struct iovec* iov = &a->send_iovs[x->first];
      // the copies of a packet sent to many destinations share one iovec: less for the kernel to read
      if (x->count == 1 && r > 0 && a->runs[r - 1].count == 1) {
        struct iovec* before = a->send_msgs[r - 1].msg_hdr.msg_iov;
        if (before->iov_base == iov->iov_base && before->iov_len == iov->iov_len) iov = before;
      }
      m->msg_hdr.msg_iov = iov;
      m->msg_hdr.msg_iovlen = x->count;
      // the kernel copies each message's address from user memory: side by side here, a chunk's
      // addresses span a few pages; read from the peer table (a destination every 256 bytes) they
      // spanned a page per 16 destinations, and that copy took five times GStreamer's share (perf)
      if (x->peer >= 0) {
        // (sizes the compiler knows: an inline copy, not a library call per message)
        if (p->peer_len[x->peer] == sizeof(struct sockaddr_in)) memcpy(&a->send_names[r], &p->peers[x->peer], sizeof(struct sockaddr_in));
        else memcpy(&a->send_names[r], &p->peers[x->peer], sizeof(struct sockaddr_in6));
        m->msg_hdr.msg_name = &a->send_names[r];
        m->msg_hdr.msg_namelen = p->peer_len[x->peer];
      } else {
        m->msg_hdr.msg_name = NULL;
        m->msg_hdr.msg_namelen = 0;
      }
      if (x->count > 1) {
        m->msg_hdr.msg_control = a->send_control[r];
        m->msg_hdr.msg_controllen = GSO_CONTROL;
        struct cmsghdr* c = CMSG_FIRSTHDR(&m->msg_hdr);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t seg = (uint16_t)x->seg;
        memcpy(CMSG_DATA(c), &seg, sizeof seg);
      } else {
        m->msg_hdr.msg_control = NULL;
        m->msg_hdr.msg_controllen = 0;
      }
      m->msg_hdr.msg_flags = 0;
    }
    uint32_t done = 0;
    while (done < runs) {
      int n = sendmmsg(p->fd, &a->send_msgs[done], runs - done, MSG_DONTWAIT);
      if (n > 0) {
        for (uint32_t r = done; r < done + (uint32_t)n; r++) result[RESULT_SENT] += (int32_t)a->runs[r].count;
        result[RESULT_MESSAGES] += n;
        done += (uint32_t)n;
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && would_block(errno)) {
        enqueue_runs(p, a, done, 0, runs, e, result);
        done = runs;
      } else if (a->runs[done].count > 1) {
        // GSO refused: no checksum offload on the route (EIO: never on this socket again), or a
        // size over the path's MTU (EINVAL, EMSGSIZE: not at this size again); any other error
        // (a pending ICMP error on a connected socket) is this call's alone. Sent one by one.
        if (errno == EIO) p->gso = gso = 0;
        else if ((errno == EINVAL || errno == EMSGSIZE) && a->runs[done].seg - 1 < p->gso_max) p->gso_max = a->runs[done].seg - 1;
        if (send_run_singly(p, a, done, e, result)) {
          enqueue_runs(p, a, done + 1, 0, runs, e, result);
          done = runs;
        } else {
          done++;
        }
      } else if (n < 0 && errno == EMSGSIZE && p->df && send_fragmentable(p, &a->send_msgs[done].msg_hdr) == 0) {
        result[RESULT_SENT]++;  // larger than the MTU: sent fragmented, as without DF
        result[RESULT_MESSAGES]++;
        done++;
      } else {
        result[RESULT_FAILED]++;  // this message only (a refused destination, a pending ICMP error)
        e[(size_t)a->send_entry[a->runs[done].first] * 3 + 1] = -1;
        done++;
      }
    }
  }
  if (p->q_count > 0) restart_poll(p);
  napi_value out;
  napi_create_uint32(env, (uint32_t)(result[RESULT_SENT] + result[RESULT_QUEUED]), &out);
  return out;
}

// Whether the socket can send with UDP GSO. A kernel without it would not refuse the control
// message: it would send one large datagram, fragmented. Setting the socket option (0: no
// default size) is the probe.
static bool gso_works(int fd) {
  int zero = 0;
  return setsockopt(fd, SOL_UDP, UDP_SEGMENT, &zero, sizeof zero) == 0;
}

// segmentationSupported(): boolean. Whether this kernel has UDP GSO.
static napi_value segmentation_supported(napi_env env, napi_callback_info info) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  bool ok = fd >= 0 && gso_works(fd);
  if (fd >= 0) close(fd);
  napi_value out;
  napi_get_boolean(env, ok, &out);
  return out;
}

// setSegmentation(port, on): boolean. Sends with UDP GSO from now on where the kernel has it
// (true), or without (false: asked off, or not there).

static napi_value set_segmentation(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  Port* p = port_call(env, info, 2, argv);
  if (!p) return NULL;
  bool on = false;
  if (napi_get_value_bool(env, argv[1], &on) != napi_ok) {
    napi_throw_type_error(env, NULL, "setSegmentation(port, on: boolean)");
    return NULL;
  }
  p->gso = on && gso_works(p->fd);
  p->gso_max = GSO_BYTES;
  napi_value out;
  napi_get_boolean(env, p->gso != 0, &out);
  return out;
}

// setGroup(ports): sockets read together after a stall, in the kernel's arrival order (a
// segment's media socket and its legs'). All receive through the addon on one arena, none is in
// a group yet, 2 to GROUP_MAX of them. Each leaves the group when it closes.
static napi_value set_group(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool is_array = false;
  uint32_t n = 0;
  if (argc < 1 || napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[0], &n) != napi_ok ||
      n < 2 || n > GROUP_MAX) {
    napi_throw_type_error(env, NULL, "setGroup(ports): an array of 2 to 8 ports");
    return NULL;
  }
  Port* members[GROUP_MAX];
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    if (napi_get_element(env, argv[0], i, &v) != napi_ok) return NULL;
    Port* p = port_of(env, v);
    if (!p) return NULL;
    members[i] = p;
  }
  for (uint32_t i = 0; i < n; i++) {
    Port* p = members[i];
    int repeated = 0;
    for (uint32_t j = 0; j < i; j++) repeated |= members[j] == p;
    if (p->group || !p->callback || p->arena != members[0]->arena || repeated || p->arena->slots < n) {
      napi_throw_error(env, NULL, "setGroup: each port receives through the addon, on one arena with a slot for each, in no other group, once");
      return NULL;
    }
  }
  Group* g = calloc(1, sizeof *g);
  if (!g) {
    napi_throw_error(env, NULL, "setGroup: out of memory");
    return NULL;
  }
  for (uint32_t i = 0; i < n; i++) {
    g->members[i] = members[i];
    members[i]->group = g;
  }
  g->count = n;
  return NULL;
}

// receiveNow(port): reads what the socket holds now, as a wakeup would, without waiting for one;
// a grouped port reads its whole group in arrival order. For a timer that fires late after a stall
// (the loop runs timers before it polls): the packets that came meanwhile reach the chain first.
// Not from inside a callback of the same arena: its packets would be overwritten.
// Returns true when it stopped at its budget (a wakeup's) and the socket may hold more; a port
// that is closing or paused reads nothing.
static napi_value receive_now(napi_env env, napi_callback_info info) {
  Port* p = any_port_call(env, info, "receiveNow(port)");
  if (!p) return NULL;
  if (p->arena->in_callback) {
    napi_throw_error(env, NULL, "receiveNow: called from inside a callback of the same arena (its packets would be overwritten)");
    return NULL;
  }
  int more = 0;
  if (!p->closing && p->callback && p->receiving) {
    napi_handle_scope scope;
    CHECK(napi_open_handle_scope(env, &scope));
    more = p->group && p->group->count > 1 ? receive_merged(p->group, -1, 0) : receive_rounds(p, ROUNDS_PER_WAKE);
    napi_close_handle_scope(env, scope);
  }
  napi_value out;
  CHECK(napi_get_boolean(env, more, &out));
  return out;
}

// pause(port) / resume(port): stop and start receiving (the socket still sends).
static napi_value set_receiving(napi_env env, napi_callback_info info, int on) {
  napi_value argv[1];
  Port* p = port_call(env, info, 1, argv);
  if (!p) return NULL;
  p->receiving = on;
  restart_poll(p);
  return NULL;
}

static napi_value pause_port(napi_env env, napi_callback_info info) {
  return set_receiving(env, info, 0);
}

static napi_value resume_port(napi_env env, napi_callback_info info) {
  return set_receiving(env, info, 1);
}

// queued(port): packets waiting for the socket to become writable.
static napi_value queued(napi_env env, napi_callback_info info) {
  Port* p = any_port_call(env, info, "queued(port)");
  if (!p) return NULL;
  napi_value out;
  napi_create_uint32(env, p->closing ? 0 : p->q_count, &out);
  return out;
}

// close(port): stops and frees it; what is still queued is dropped. Safe to call twice.
static napi_value close_port(napi_env env, napi_callback_info info) {
  Port* p = any_port_call(env, info, "close(port)");
  if (p) start_close(p);
  return NULL;
}

// Bun's node:dgram asks for the destination address, the TOS byte and the error queue on every
// socket it makes. This data plane reads none of them, and they are not free: each datagram
// received then keeps its route referenced and carries two more control messages, and an ICMP
// error would wait on a queue nobody drains, making the socket report an error to epoll at every
// look. Off for both families; a call that does not apply to the socket's family fails harmlessly.
static void drop_ancillary_options(int fd) {
  int off = 0;
  setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &off, sizeof off);
  setsockopt(fd, IPPROTO_IP, IP_RECVTOS, &off, sizeof off);
  setsockopt(fd, IPPROTO_IP, IP_RECVERR, &off, sizeof off);
  setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &off, sizeof off);
  setsockopt(fd, IPPROTO_IPV6, IPV6_RECVTCLASS, &off, sizeof off);
  setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &off, sizeof off);
}

static pthread_mutex_t owned_lock = PTHREAD_MUTEX_INITIALIZER;
static struct Owned* owned_list;

static void forget_owned(struct Owned* o) {
  pthread_mutex_lock(&owned_lock);
  for (struct Owned** at = &owned_list; *at; at = &(*at)->next) {
    if (*at == o) {
      *at = o->next;
      break;
    }
  }
  pthread_mutex_unlock(&owned_lock);
  free(o);
}

// setArenaOwner(arena, owner): the arena belongs to worker `owner` (its keepOwner).
static napi_value set_arena_owner(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void* data = NULL;
  int32_t owner;
  if (argc < 2 || napi_get_value_external(env, argv[0], &data) != napi_ok || !data || napi_get_value_int32(env, argv[1], &owner) != napi_ok || owner < 0) {
    napi_throw_type_error(env, NULL, "setArenaOwner(arena, owner >= 0)");
    return NULL;
  }
  Arena* a = data;
  struct Owned* o = a->owned ? a->owned : calloc(1, sizeof *o);
  if (!o) {
    napi_throw_error(env, NULL, "setArenaOwner: out of memory");
    return NULL;
  }
  pthread_mutex_lock(&owned_lock);
  if (!a->owned) {
    o->next = owned_list;
    owned_list = o;
    a->owned = o;
  }
  o->owner = owner;
  pthread_mutex_unlock(&owned_lock);
  return NULL;
}

// The call's one argument, an integer of at least `min` (0 when it is not, with a JS exception pending).
static int int_arg(napi_env env, napi_callback_info info, const char* usage, int32_t min, int32_t* value) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_int32(env, argv[0], value) != napi_ok || *value < min) {
    napi_throw_type_error(env, NULL, usage);
    return 0;
  }
  return 1;
}

static int fd_arg(napi_env env, napi_callback_info info, const char* usage, int32_t* fd) {
  return int_arg(env, info, usage, 0, fd);
}

// stopReading(owner): from another thread, before it terminates worker `owner`: its sockets are
// read no more (on_poll), so that what they hold is left for the worker that replaces it.
static napi_value stop_reading(napi_env env, napi_callback_info info) {
  int32_t owner;
  if (!int_arg(env, info, "stopReading(owner)", INT32_MIN, &owner)) return NULL;
  pthread_mutex_lock(&owned_lock);
  for (struct Owned* o = owned_list; o; o = o->next) if (o->owner == owner) atomic_store(&o->stopping, 1);
  pthread_mutex_unlock(&owned_lock);
  return NULL;
}

// Listen sockets a worker thread leaves bound when it ends with its segments running (the
// watchdog terminated it, or it crashed), for the worker that replaces it: the socket's queue, and
// what arrives while the new worker starts, is then read late instead of lost. Process-wide, as
// worker threads share the descriptor table; each entry names its owner (the worker that took it),
// the place it is bound at and the settings it was set up with. The main thread releases what no
// replacement claimed (releaseParked). Where workers are processes, the proxy parks the duplicates
// they send it here (below, "Listen sockets a worker process keeps").
typedef struct Keepable {
  int fd;
  int32_t owner;
  int parked;  // its thread ended with it open, or it was handed over (parkSocket)
  int handed;  // parked by parkSocket, not by its thread's end
  int shared;  // a worker process sent the proxy a duplicate of it (shareKept)
  int hooked;  // the environment's end closes (or parks) it: a cleanup hook names its descriptor
  char* place;
  char* detail;
  struct Keepable* next;
} Keepable;

static pthread_mutex_t keep_lock = PTHREAD_MUTEX_INITIALIZER;
static Keepable* keepables;

// Places of shared sockets a worker process closed ('R') or handed over ('H': closed here, for
// another worker, or itself in the open step, to claim from the proxy), oldest first, for its next
// shareKept to tell the proxy.
typedef struct Removal {
  char kind;
  char* place;
  struct Removal* next;
} Removal;
static Removal* removals;
static Removal** removals_tail = &removals;

// A shared socket is closed ('R': the proxy must close its copy too, else the port stays bound)
// or handed over ('H'). The caller holds keep_lock.
static void note_removal(Keepable* k, char kind) {
  if (!k->shared) return;
  Removal* r = malloc(sizeof *r);
  if (!r || !(r->place = strdup(k->place))) {
    free(r);
    return;
  }
  r->kind = kind;
  r->next = NULL;
  *removals_tail = r;
  removals_tail = &r->next;
}

// Unlinks the entry for `fd` (parked or not as `parked` says; -1: either); the caller frees it.
static Keepable* unlink_keepable(int fd, int parked) {
  for (Keepable** at = &keepables; *at; at = &(*at)->next) {
    Keepable* k = *at;
    if (k->fd == fd && (parked < 0 || k->parked == parked)) {
      *at = k->next;
      return k;
    }
  }
  return NULL;
}

static void free_keepable(Keepable* k) {
  free(k->place);
  free(k->detail);
  free(k);
}

// A taken descriptor still open when its environment (a worker thread) ends: parked when it is a
// keepable listen socket, else closed (nobody else knows it).
static void close_taken_at_exit(void* arg) {
  int fd = (int)(intptr_t)arg;
  pthread_mutex_lock(&keep_lock);
  Keepable* k = keepables;
  while (k && !(k->fd == fd && !k->parked)) k = k->next;
  if (k) k->parked = 1;
  pthread_mutex_unlock(&keep_lock);
  if (!k) close(fd);
}

static char* string_arg(napi_env env, napi_value v) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char* text = malloc(len + 1);
  if (text && napi_get_value_string_utf8(env, v, text, len + 1, &len) != napi_ok) {
    free(text);
    return NULL;
  }
  return text;
}

// Registers `fd` as keepable for `owner` (see Keepable); 0 when out of memory.
static int add_keepable(int fd, int32_t owner, char* place, char* detail, int hooked) {
  Keepable* k = malloc(sizeof *k);
  if (!k) return 0;
  *k = (Keepable){.fd = fd, .owner = owner, .place = place, .detail = detail, .hooked = hooked};
  pthread_mutex_lock(&keep_lock);
  k->next = keepables;
  keepables = k;
  pthread_mutex_unlock(&keep_lock);
  return 1;
}

// takeSocket(fd, closeAtExit?, owner?, place?, detail?): a duplicate of the descriptor
// (close-on-exec), for the caller to close the original's owner (node:dgram: Bun's cannot stop
// reading it, and Node's closes it under a libuv poll handle when a worker thread ends) and keep
// the socket itself, without the ancillary data that node:dgram asked for (drop_ancillary_options).
// With closeAtExit the environment's end closes it if closeSocket has not (a worker thread's
// sockets must not outlive it), unless an owner (>= 0) is given: then it is parked there for
// claimParked(owner, place, detail). An owner without closeAtExit (a worker process): kept for
// shareKept.
static napi_value take_socket(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, owner = -1;
  bool at_exit = false;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 || (argc > 1 && napi_get_value_bool(env, argv[1], &at_exit) != napi_ok) ||
      (argc > 2 && napi_get_value_int32(env, argv[2], &owner) != napi_ok) || (owner >= 0 && argc < 5)) {
    napi_throw_type_error(env, NULL, "takeSocket(fd, closeAtExit?: boolean, owner?: number, place?: string, detail?: string)");
    return NULL;
  }
  char *place = NULL, *detail = NULL;
  if (owner >= 0 && (!(place = string_arg(env, argv[3])) || !(detail = string_arg(env, argv[4])))) {
    free(place);
    napi_throw_type_error(env, NULL, "takeSocket: place and detail must be strings");
    return NULL;
  }
  int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0) {
    free(place);
    free(detail);
    char text[100];
    snprintf(text, sizeof text, "takeSocket: %s", strerror(errno));
    napi_throw_error(env, NULL, text);
    return NULL;
  }
  drop_ancillary_options(own);
  if (owner >= 0 && !add_keepable(own, owner, place, detail, at_exit)) {
    free(place);
    free(detail);
    close(own);
    napi_throw_error(env, NULL, "takeSocket: out of memory");
    return NULL;
  }
  if (at_exit && napi_add_env_cleanup_hook(env, close_taken_at_exit, (void*)(intptr_t)own) != napi_ok) {
    pthread_mutex_lock(&keep_lock);
    Keepable* k = unlink_keepable(own, 0);
    pthread_mutex_unlock(&keep_lock);
    if (k) free_keepable(k);
    close(own);
    napi_throw_error(env, NULL, "takeSocket: cannot register the descriptor's cleanup");
    return NULL;
  }
  napi_value out;
  CHECK(napi_create_int32(env, own, &out));
  return out;
}

// claimParked(owner, place, detail, newOwner): the descriptor `owner` (-1: any) parked at `place`, now the
// caller's (closed at its environment's end, or parked for newOwner), or -1: none parked there, or
// one set up otherwise (another `detail`: closed, so that its place can be bound again).
static napi_value claim_parked(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t owner, new_owner;
  char *place = NULL, *detail = NULL;
  if (argc < 4 || napi_get_value_int32(env, argv[0], &owner) != napi_ok || napi_get_value_int32(env, argv[3], &new_owner) != napi_ok ||
      !(place = string_arg(env, argv[1])) || !(detail = string_arg(env, argv[2]))) {
    free(place);
    napi_throw_type_error(env, NULL, "claimParked(owner, place: string, detail: string, newOwner)");
    return NULL;
  }
  pthread_mutex_lock(&keep_lock);
  Keepable* found = NULL;
  for (Keepable** at = &keepables; *at; at = &(*at)->next) {
    if ((*at)->parked && (owner < 0 || (*at)->owner == owner) && strcmp((*at)->place, place) == 0) {
      found = *at;
      *at = found->next;
      break;
    }
  }
  pthread_mutex_unlock(&keep_lock);
  int fd = -1;
  if (found && strcmp(found->detail, detail) == 0 && napi_add_env_cleanup_hook(env, close_taken_at_exit, (void*)(intptr_t)found->fd) == napi_ok) {
    fd = found->fd;
    found->owner = new_owner;
    found->parked = found->handed = 0;
    found->hooked = 1;
    if (new_owner >= 0) {
      pthread_mutex_lock(&keep_lock);
      found->next = keepables;
      keepables = found;
      pthread_mutex_unlock(&keep_lock);
      found = NULL;
    }
  } else if (found) {
    close(found->fd);
  }
  if (found) free_keepable(found);
  free(place);
  free(detail);
  napi_value out;
  CHECK(napi_create_int32(env, fd, &out));
  return out;
}


// parkSocket(fd): parks a keepable socket its worker hands over to another (a segment that moves),
// closeAtExit's hook removed: true; false when it is not keepable (the caller closes it).
static napi_value park_socket(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!fd_arg(env, info, "parkSocket(fd)", &fd)) return NULL;
  pthread_mutex_lock(&keep_lock);
  Keepable* k = keepables;
  while (k && !(k->fd == fd && !k->parked)) k = k->next;
  if (k) k->parked = k->handed = 1;
  pthread_mutex_unlock(&keep_lock);
  if (k) napi_remove_env_cleanup_hook(env, close_taken_at_exit, (void*)(intptr_t)fd);
  napi_value out;
  CHECK(napi_get_boolean(env, k != NULL, &out));
  return out;
}

// parkedPlaces(owner, handedOnly?): where the sockets `owner` parked (handedOnly: handed over) are bound.
static napi_value parked_places(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t owner;
  bool handed_only = false;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &owner) != napi_ok || (argc > 1 && napi_get_value_bool(env, argv[1], &handed_only) != napi_ok)) {
    napi_throw_type_error(env, NULL, "parkedPlaces(owner, handedOnly?: boolean)");
    return NULL;
  }
  napi_value out;
  CHECK(napi_create_array(env, &out));
  uint32_t n = 0;
  pthread_mutex_lock(&keep_lock);
  for (Keepable* k = keepables; k; k = k->next) {
    if (!k->parked || k->owner != owner || (handed_only && !k->handed)) continue;
    napi_value text;
    if (napi_create_string_utf8(env, k->place, NAPI_AUTO_LENGTH, &text) == napi_ok) napi_set_element(env, out, n++, text);
  }
  pthread_mutex_unlock(&keep_lock);
  return out;
}

// releaseParked(owner, handedOnly?): closes every socket `owner` (-1: any) parked that nobody claimed (with
// handedOnly, those it handed over (parkSocket) only: not those its thread's end parked, which a
// worker that just crashed leaves to its replacement); how many.
static napi_value release_parked(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t owner;
  bool handed_only = false;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &owner) != napi_ok || (argc > 1 && napi_get_value_bool(env, argv[1], &handed_only) != napi_ok)) {
    napi_throw_type_error(env, NULL, "releaseParked(owner, handedOnly?: boolean)");
    return NULL;
  }
  uint32_t n = 0;
  pthread_mutex_lock(&keep_lock);
  for (Keepable** at = &keepables; *at;) {
    Keepable* k = *at;
    if (k->parked && (owner < 0 || k->owner == owner) && (!handed_only || k->handed)) {
      *at = k->next;
      close(k->fd);
      free_keepable(k);
      n++;
    } else {
      at = &k->next;
    }
  }
  pthread_mutex_unlock(&keep_lock);
  napi_value out;
  CHECK(napi_create_uint32(env, n, &out));
  return out;
}


// Listen sockets a worker *process* keeps (Bun's workers are processes): its descriptors close
// when it is killed, and with them its listen sockets' queues. So the worker sends the proxy a
// duplicate of each listen socket it keeps (shareKept), and the places of those it closed, over a
// SOCK_SEQPACKET pair the proxy made (channelPair). The proxy holds them parked under the worker's
// owner number (receiveKept) and sends them to the worker that replaces it (sendParked), which
// parks them in its own table (receiveKept) and claims them as a worker thread claims what its
// predecessor parked. A record is: a kind byte ('A' add, 'R' removed), the owner (int32), then
// NUL-terminated strings (place and detail per added socket, its descriptor in SCM_RIGHTS; a
// place per removed one). Sends never block: a full channel leaves the rest for the next call.
#define CHANNEL_TEXT_MAX 16384
#define CHANNEL_FDS_MAX 64
#define CHANNEL_BUFFER (1 << 20)

// channelPair(): [proxy's end, worker's end] of a new SOCK_SEQPACKET pair (close-on-exec).
static napi_value channel_pair(napi_env env, napi_callback_info info) {
  (void)info;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    char text[100];
    snprintf(text, sizeof text, "channelPair: %s", strerror(errno));
    napi_throw_error(env, NULL, text);
    return NULL;
  }
  int size = CHANNEL_BUFFER;  // best effort: capped by net.core.wmem_max / rmem_max
  for (int i = 0; i < 2; i++) {
    setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  }
  napi_value out, a, b;
  CHECK(napi_create_array_with_length(env, 2, &out));
  CHECK(napi_create_int32(env, sv[0], &a));
  CHECK(napi_create_int32(env, sv[1], &b));
  CHECK(napi_set_element(env, out, 0, a));
  CHECK(napi_set_element(env, out, 1, b));
  return out;
}

// Sends one record: 1 sent, 0 the channel is full, -1 it is broken (its other end gone).
static int send_record(int channel, char kind, int32_t owner, const char* text, size_t len, const int* fds, int nfds) {
  char head[5];
  head[0] = kind;
  memcpy(head + 1, &owner, sizeof owner);
  struct iovec iov[2] = {{head, sizeof head}, {(void*)text, len}};
  union {
    char buf[CMSG_SPACE(sizeof(int) * CHANNEL_FDS_MAX)];
    struct cmsghdr align;
  } control;
  struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};
  if (nfds > 0) {
    memset(&control, 0, sizeof control);
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  for (;;) {
    if (sendmsg(channel, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) return 1;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS ? 0 : -1;
  }
}

// Appends `a` and (if not NULL) `b`, NUL-terminated, to text[*len]; 0 when they do not fit.
static int append_strings(char* text, size_t* len, const char* a, const char* b) {
  size_t la = strlen(a) + 1, lb = b ? strlen(b) + 1 : 0;
  if (*len + la + lb > CHANNEL_TEXT_MAX) return 0;
  memcpy(text + *len, a, la);
  if (b) memcpy(text + *len + la, b, lb);
  *len += la + lb;
  return 1;
}

// Sends the places closed and handed over, oldest first, a record per run of one kind; the caller
// holds keep_lock. 1: all sent, 0: the channel is full, -1: broken.
static int send_removals(int channel, int32_t owner, char* text) {
  while (removals) {
    size_t len = 0;
    char kind = removals->kind;
    Removal* last = NULL;  // the last one the record holds
    for (Removal* r = removals; r && r->kind == kind && append_strings(text, &len, r->place, NULL); r = r->next) last = r;
    if (!last) return -1;  // a place longer than a record: cannot be
    int sent = send_record(channel, kind, owner, text, len, NULL, 0);
    if (sent <= 0) return sent;
    for (Removal* r = removals, *next; ; r = next) {
      next = r->next;
      int done = r == last;
      free(r->place);
      free(r);
      removals = next;
      if (done) break;
    }
    if (!removals) removals_tail = &removals;
  }
  return 1;
}

// Which kept sockets an add record carries, and what becomes of each once it is sent.
typedef struct AddPick {
  int32_t owner;
  int parked;          // the proxy's parked copies (1), or a worker's own kept sockets (0)
  int handed_only;     // parked: only those handed over
  const char* place;   // parked: only at this place ("" any)
} AddPick;

static int picked(const Keepable* k, const AddPick* p) {
  if (k->owner != p->owner || k->parked != p->parked) return 0;
  if (!p->parked) return !k->shared;
  return (!p->handed_only || k->handed) && (!p->place[0] || strcmp(k->place, p->place) == 0);
}

// Sends what `pick` selects as add records, up to CHANNEL_FDS_MAX a record: a worker's own are then
// marked shared, the proxy's copies closed (the receiver's now). How many are left for a later call
// (0: all sent), or -1: the channel is broken. The caller holds keep_lock.
static int send_adds(int channel, const AddPick* pick, char* text) {
  for (;;) {
    size_t len = 0;
    int fds[CHANNEL_FDS_MAX];
    Keepable* batch[CHANNEL_FDS_MAX];
    int n = 0, left = 0;
    for (Keepable* k = keepables; k; k = k->next) {
      if (!picked(k, pick)) continue;
      if (n < CHANNEL_FDS_MAX && append_strings(text, &len, k->place, k->detail)) {
        fds[n] = k->fd;
        batch[n++] = k;
      } else {
        left++;
      }
    }
    if (n == 0) return 0;
    int sent = send_record(channel, 'A', pick->owner, text, len, fds, n);
    if (sent < 0) return -1;
    if (sent == 0) return n + left;
    for (int i = 0; i < n; i++) {
      if (!pick->parked) {
        batch[i]->shared = 1;
        continue;
      }
      Keepable* k = unlink_keepable(batch[i]->fd, 1);
      close(k->fd);
      free_keepable(k);
    }
    if (left == 0) return 0;
  }
}

// handKept(fd): a worker process hands over a listen socket it shared (a segment that moves, or
// gets new sockets): its descriptor is closed here, the proxy's copy stays bound, with its queue,
// for the worker that takes the segment (shareKept tells the proxy). False when it was not shared:
// the caller closes it.
static napi_value hand_kept(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!fd_arg(env, info, "handKept(fd)", &fd)) return NULL;
  pthread_mutex_lock(&keep_lock);
  Keepable* k = keepables;
  while (k && !(k->fd == fd && !k->parked)) k = k->next;
  if (k && k->shared) {
    k = unlink_keepable(fd, 0);
    note_removal(k, 'H');
  } else {
    k = NULL;
  }
  pthread_mutex_unlock(&keep_lock);
  if (k) {
    // a claimed one's hook would close the number again at the end, and a later claim of a socket
    // given the same number could not add its own (Bun asserts on a duplicate hook)
    if (k->hooked) napi_remove_env_cleanup_hook(env, close_taken_at_exit, (void*)(intptr_t)fd);
    free_keepable(k);
    close(fd);
  }
  napi_value out;
  CHECK(napi_get_boolean(env, k != NULL, &out));
  return out;
}

// shareKept(channel, owner): a worker process tells the proxy which of its listen sockets it
// closed and sends a duplicate of each it keeps that it has not sent yet; how many records' worth
// is left for a later call (0: all sent; -1: the channel is broken).
static napi_value share_kept(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t channel, owner;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &channel) != napi_ok || napi_get_value_int32(env, argv[1], &owner) != napi_ok) {
    napi_throw_type_error(env, NULL, "shareKept(channel, owner)");
    return NULL;
  }
  static char text[CHANNEL_TEXT_MAX];
  pthread_mutex_lock(&keep_lock);
  int left = send_removals(channel, owner, text);  // first: the proxy must let go of a port before any worker binds it again
  AddPick own = {.owner = owner, .parked = 0, .place = ""};
  if (left == 1) left = send_adds(channel, &own, text);
  else if (left == 0) left = 1;
  pthread_mutex_unlock(&keep_lock);
  napi_value out;
  CHECK(napi_create_int32(env, left, &out));
  return out;
}

// sendParked(channel, owner, place, handedOnly?): the proxy hands the sockets it holds parked for
// `owner` (at `place`, "": all; handedOnly: those that worker handed over) to a worker, which parks them under `owner` in turn: each one sent is
// closed here, the worker's to claim or close from then on. How many are left for a later call,
// once the worker has read (0: none; -1: the channel is broken).
static napi_value send_parked(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t channel, owner;
  char* place = NULL;
  bool handed_only = false;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &channel) != napi_ok || napi_get_value_int32(env, argv[1], &owner) != napi_ok ||
      (argc > 3 && napi_get_value_bool(env, argv[3], &handed_only) != napi_ok) || !(place = string_arg(env, argv[2]))) {
    napi_throw_type_error(env, NULL, "sendParked(channel, owner, place: string, handedOnly?: boolean)");
    return NULL;
  }
  static char text[CHANNEL_TEXT_MAX];
  AddPick pick = {.owner = owner, .parked = 1, .handed_only = handed_only, .place = place};
  pthread_mutex_lock(&keep_lock);
  int left = send_adds(channel, &pick, text);
  pthread_mutex_unlock(&keep_lock);
  free(place);
  napi_value out;
  CHECK(napi_create_int32(env, left, &out));
  return out;
}

// Closes the parked entry of `owner` at `place`, if any; the caller holds keep_lock.
static void close_parked_at(int32_t owner, const char* place) {
  for (Keepable** at = &keepables; *at; at = &(*at)->next) {
    Keepable* k = *at;
    if (k->parked && k->owner == owner && strcmp(k->place, place) == 0) {
      *at = k->next;
      close(k->fd);
      free_keepable(k);
      return;
    }
  }
}

// receiveKept(channel, owner): reads what the channel holds now. Added sockets are parked under
// `owner` (-1: the owner each record names), replacing one parked at the same place; removed
// places close what is parked there. How many sockets it parked.
static napi_value receive_kept(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t channel, owner;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &channel) != napi_ok || napi_get_value_int32(env, argv[1], &owner) != napi_ok) {
    napi_throw_type_error(env, NULL, "receiveKept(channel, owner)");
    return NULL;
  }
  static char text[CHANNEL_TEXT_MAX + 6];
  uint32_t parked = 0;
  for (;;) {
    union {
      char buf[CMSG_SPACE(sizeof(int) * CHANNEL_FDS_MAX)];
      struct cmsghdr align;
    } control;
    struct iovec iov = {text, CHANNEL_TEXT_MAX + 5};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
    ssize_t got = recvmsg(channel, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // empty (EAGAIN), or the other end closed
    int fds[CHANNEL_FDS_MAX];
    int nfds = 0;
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      for (int i = 0; i < n && nfds < CHANNEL_FDS_MAX; i++) memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
    if (got < 5 || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {  // not a record of ours: nothing in it is kept
      for (int i = 0; i < nfds; i++) close(fds[i]);
      continue;
    }
    text[got] = 0;
    int32_t record_owner;
    memcpy(&record_owner, text + 1, sizeof record_owner);
    int32_t to = owner >= 0 ? owner : record_owner;
    const char* at = text + 5;
    const char* end = text + got;
    int used = 0;
    pthread_mutex_lock(&keep_lock);
    while (at < end) {
      const char* place = at;
      at += strlen(at) + 1;
      if (text[0] == 'R') {
        close_parked_at(to, place);
        continue;
      }
      if (text[0] == 'H') {
        for (Keepable* k = keepables; k; k = k->next) if (k->parked && k->owner == to && strcmp(k->place, place) == 0) k->handed = 1;
        continue;
      }
      if (at >= end || used >= nfds) break;
      const char* detail = at;
      at += strlen(at) + 1;
      int fd = fds[used++];
      char* p = strdup(place);
      char* d = strdup(detail);
      Keepable* k = p && d ? malloc(sizeof *k) : NULL;
      if (!k) {
        free(p);
        free(d);
        close(fd);
        continue;
      }
      close_parked_at(to, place);
      *k = (Keepable){.fd = fd, .owner = to, .parked = 1, .place = p, .detail = d, .next = keepables};
      keepables = k;
      parked++;
    }
    pthread_mutex_unlock(&keep_lock);
    for (int i = used; i < nfds; i++) close(fds[i]);
  }
  napi_value out;
  CHECK(napi_create_uint32(env, parked, &out));
  return out;
}

// closeSocket(fd, closeAtExit?): closes a descriptor takeSocket or claimParked made (after
// close(port) of every port on it); closeAtExit as given to takeSocket.
static napi_value close_socket(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  bool at_exit = false;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 || (argc > 1 && napi_get_value_bool(env, argv[1], &at_exit) != napi_ok)) {
    napi_throw_type_error(env, NULL, "closeSocket(fd, closeAtExit?: boolean)");
    return NULL;
  }
  if (at_exit) napi_remove_env_cleanup_hook(env, close_taken_at_exit, (void*)(intptr_t)fd);
  pthread_mutex_lock(&keep_lock);
  Keepable* k = unlink_keepable(fd, 0);
  if (k) note_removal(k, 'R');
  pthread_mutex_unlock(&keep_lock);
  if (k) free_keepable(k);
  close(fd);
  return NULL;
}

// disconnectSocket(fd): forgets a connected peer (connect to AF_UNSPEC, as node:dgram's disconnect).
static napi_value disconnect_socket(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!fd_arg(env, info, "disconnectSocket(fd)", &fd)) return NULL;
  struct sockaddr none = {.sa_family = AF_UNSPEC};
  connect(fd, &none, sizeof none);
  return NULL;
}

// addressOf(meta: Int32Array, index): the source address of received packet `index`, as text
// (inet_ntop's, and a link-local address's zone as %interface: node:dgram's).
static napi_value address_of(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void* meta;
  size_t len;
  uint32_t index;
  if (argc < 2 || !typed_array(env, argv[0], napi_int32_array, &meta, &len) || napi_get_value_uint32(env, argv[1], &index) != napi_ok ||
      ((size_t)index + 1) * META_STRIDE > len) {
    napi_throw_type_error(env, NULL, "addressOf(meta: Int32Array, index)");
    return NULL;
  }
  const int32_t* m = (const int32_t*)meta + (size_t)index * META_STRIDE;
  char text[INET6_ADDRSTRLEN + 1 + IF_NAMESIZE];
  if (!inet_ntop(m[2] == 6 ? AF_INET6 : AF_INET, &m[4], text, INET6_ADDRSTRLEN)) text[0] = 0;
  if (m[2] == 6 && m[8] != 0 && IN6_IS_ADDR_LINKLOCAL((const struct in6_addr*)&m[4])) {
    size_t at = strlen(text);
    text[at] = '%';
    if (!if_indextoname((unsigned)m[8], text + at + 1)) snprintf(text + at + 1, IF_NAMESIZE, "%u", (unsigned)m[8]);
  }
  napi_value out;
  CHECK(napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &out));
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"createArena", NULL, create_arena, NULL, NULL, NULL, napi_default, NULL},
      {"attach", NULL, attach, NULL, NULL, NULL, napi_default, NULL},
      {"setPeer", NULL, set_peer, NULL, NULL, NULL, napi_default, NULL},
      {"send", NULL, send_batch, NULL, NULL, NULL, napi_default, NULL},
      {"pause", NULL, pause_port, NULL, NULL, NULL, napi_default, NULL},
      {"resume", NULL, resume_port, NULL, NULL, NULL, napi_default, NULL},
      {"addressOf", NULL, address_of, NULL, NULL, NULL, napi_default, NULL},
      {"flush", NULL, flush, NULL, NULL, NULL, napi_default, NULL},
      {"queued", NULL, queued, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, close_port, NULL, NULL, NULL, napi_default, NULL},
      {"takeSocket", NULL, take_socket, NULL, NULL, NULL, napi_default, NULL},
      {"setSegmentation", NULL, set_segmentation, NULL, NULL, NULL, napi_default, NULL},
      {"setGroup", NULL, set_group, NULL, NULL, NULL, napi_default, NULL},
      {"receiveNow", NULL, receive_now, NULL, NULL, NULL, napi_default, NULL},
      {"segmentationSupported", NULL, segmentation_supported, NULL, NULL, NULL, napi_default, NULL},
      {"closeSocket", NULL, close_socket, NULL, NULL, NULL, napi_default, NULL},
      {"disconnectSocket", NULL, disconnect_socket, NULL, NULL, NULL, napi_default, NULL},
      {"claimParked", NULL, claim_parked, NULL, NULL, NULL, napi_default, NULL},
      {"parkedPlaces", NULL, parked_places, NULL, NULL, NULL, napi_default, NULL},
      {"releaseParked", NULL, release_parked, NULL, NULL, NULL, napi_default, NULL},
      {"parkSocket", NULL, park_socket, NULL, NULL, NULL, napi_default, NULL},
      {"setArenaOwner", NULL, set_arena_owner, NULL, NULL, NULL, napi_default, NULL},
      {"stopReading", NULL, stop_reading, NULL, NULL, NULL, napi_default, NULL},
      {"channelPair", NULL, channel_pair, NULL, NULL, NULL, napi_default, NULL},
      {"shareKept", NULL, share_kept, NULL, NULL, NULL, napi_default, NULL},
      {"sendParked", NULL, send_parked, NULL, NULL, NULL, napi_default, NULL},
      {"receiveKept", NULL, receive_kept, NULL, NULL, NULL, napi_default, NULL},
      {"handKept", NULL, hand_kept, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  // the layout JS reads received packets' metadata with: an addon built from an older source says so
  napi_value stride;
  napi_create_uint32(env, META_STRIDE, &stride);
  napi_set_named_property(env, exports, "metaStride", stride);
  return exports;
}

NAPI_MODULE_INIT() {
  return init(env, exports);
}
