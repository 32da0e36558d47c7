/* Socket addresses for TCP and UDP (see addr.h). */
#include "io/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

socklen_t weft__addr_parse_ip(const char *ip, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (!ip)
        return 0;
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        return sizeof *a4;
    }
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        return sizeof *a6;
    }
    return 0;
}

bool weft__addr_ok(const struct sockaddr *addr, socklen_t len)
{
    if (!addr || len < sizeof(sa_family_t))
        return false;
    if (addr->sa_family == AF_INET)
        return len >= sizeof(struct sockaddr_in);
    if (addr->sa_family == AF_INET6)
        return len >= sizeof(struct sockaddr_in6) && len <= sizeof(struct sockaddr_storage);
    return false;
}

int weft__addr_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return -EAFNOSUPPORT;
}
