/*
 * The ceiling of the end-to-end benchmark: the least a user-space UDP relay can do per packet.
 * Each system call carries a batch: recvmmsg takes up to BATCH datagrams (blocking until the
 * first, then whatever else is queued), sendmmsg sends them on, unchanged, from a socket
 * connected to the one destination. No parsing, no copy between the two calls: the same buffers
 * are received into and sent from. It asks for the same 4 MiB receive buffer as the other relays.
 *
 * Usage: c-relay DEST_PORT. Binds 127.0.0.1 on a port the kernel picks, prints that port on
 * stdout, then relays until SIGTERM or SIGINT (or its parent exits), and reports send errors
 * on stderr. Linux only (recvmmsg, sendmmsg, PR_SET_PDEATHSIG). Built by bench/hosts/c-relay.ts.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define SLOT 2048
#define RECEIVE_BUFFER (4 << 20)

static volatile sig_atomic_t stopping = 0;

static void on_signal(int sig) {
  (void)sig;
  stopping = 1;
}

static int loopback_socket(int port, int do_connect) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((unsigned short)port);
  int rc = do_connect ? connect(fd, (struct sockaddr *)&a, sizeof a) : bind(fd, (struct sockaddr *)&a, sizeof a);
  if (rc < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int main(int argc, char **argv) {
  int dest = argc == 2 ? atoi(argv[1]) : 0;
  if (dest < 1 || dest > 65535) {
    fprintf(stderr, "usage: c-relay DEST_PORT\n");
    return 2;
  }
  /* a relay left behind by a killed benchmark would hold its port and a core's worth of nothing */
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() == 1) return 0;

  /* no SA_RESTART: a signal interrupts the blocking recvmmsg, and the loop sees `stopping` */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  int in = loopback_socket(0, 0);
  int out = loopback_socket(dest, 1);
  if (in < 0 || out < 0) {
    perror("c-relay: socket");
    return 1;
  }
  int size = RECEIVE_BUFFER;
  setsockopt(in, SOL_SOCKET, SO_RCVBUF, &size, sizeof size); /* capped by net.core.rmem_max */
  struct sockaddr_in bound;
  socklen_t len = sizeof bound;
  if (getsockname(in, (struct sockaddr *)&bound, &len) < 0) {
    perror("c-relay: getsockname");
    return 1;
  }
  printf("%d\n", ntohs(bound.sin_port));
  fflush(stdout);

  static char buffers[BATCH][SLOT];
  struct iovec iov[BATCH];
  struct mmsghdr msgs[BATCH];
  memset(msgs, 0, sizeof msgs);
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_base = buffers[i];
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }

  unsigned long long errors = 0;
  while (!stopping) {
    for (int i = 0; i < BATCH; i++) iov[i].iov_len = SLOT;
    int n = recvmmsg(in, msgs, BATCH, MSG_WAITFORONE, NULL);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("c-relay: recvmmsg");
      return 1;
    }
    /* send what was received, each datagram at its received length */
    for (int i = 0; i < n; i++) iov[i].iov_len = msgs[i].msg_len;
    int done = 0;
    while (done < n) {
      int sent = sendmmsg(out, msgs + done, (unsigned)(n - done), 0);
      if (sent > 0) {
        done += sent;
      } else if (sent < 0 && errno == EINTR) {
        if (stopping) break;
      } else {
        /* the first unsent datagram failed (no receiver yet, no buffer): it is lost, the rest go on */
        errors++;
        done++;
      }
    }
  }
  if (errors > 0) fprintf(stderr, "c-relay: %llu send errors\n", errors);
  return 0;
}
