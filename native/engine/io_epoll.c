/* I/O backend: readiness waiting with epoll(7). Linux only; another backend
 * (kqueue, poll) would implement the same three functions. */
#include "internal.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

int ee__poller_open(int fd, int stop_fd) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return EE_EIO;
  struct epoll_event a = {.events = EPOLLIN, .data.fd = fd};
  struct epoll_event b = {.events = EPOLLIN, .data.fd = stop_fd};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &a) != 0 || epoll_ctl(ep, EPOLL_CTL_ADD, stop_fd, &b) != 0) {
    close(ep);
    return EE_EIO;
  }
  return ep;
}

int ee__poller_wait(int poller, int stop_fd) {
  for (;;) {
    struct epoll_event out[2];
    int n = epoll_wait(poller, out, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return EE_EIO;
    for (int i = 0; i < n; i++)
      if (out[i].data.fd == stop_fd) return 0;
    return 1;
  }
}

void ee__poller_close(int poller) {
  if (poller >= 0) close(poller);
}
