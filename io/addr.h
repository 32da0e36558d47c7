/* Private: socket addresses for TCP and UDP — parsing a numeric IP, the
 * checks an address given by the caller passes, the port of one. */
#ifndef WEFT_IO_ADDR_H
#define WEFT_IO_ADDR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* `ip` (numeric IPv4 or IPv6) and `port` into *ss; the address length, or
 * 0 when `ip` is NULL or not a numeric address. */
socklen_t weft__addr_parse_ip(const char *ip, uint16_t port, struct sockaddr_storage *ss);
/* An IPv4 or IPv6 address of a length that fits it. */
bool weft__addr_ok(const struct sockaddr *addr, socklen_t len);
/* The port of an IPv4 or IPv6 address, or -EAFNOSUPPORT. */
int weft__addr_port(const struct sockaddr_storage *ss);

#endif
