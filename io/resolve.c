/* weft_resolve: getaddrinfo on the blocking pool. The first poll copies
 * the request into a blocking job (the host name, port and hints); the
 * job writes up to WEFT_RESOLVE_MAX addresses into its own output, and
 * the poll that finds the job's join ready copies them to the caller.
 * Dropping the future cancels the job's task (weft_join_cancel): a queued
 * lookup never runs, a running one finishes and its result is dropped. */
#include "weft/io.h"
#include "io/blocking_io.h"
#include "sched/blocking.h"
#include "core/errors.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

enum { R_NEW, R_WAITING, R_DONE };

typedef struct resolve_arg {
    char host[WEFT_RESOLVE_HOST_MAX + 1];
    uint16_t port;
    int family;
    int ai_flags;
} resolve_arg;

typedef struct resolve_out {
    int rc; /* count, or -errno */
    struct sockaddr_storage a[WEFT_RESOLVE_MAX];
} resolve_out;

int weft__eai_errno(int eai, int sys_errno)
{
    switch (eai) {
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
        return -ENOENT;
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_FAIL:
        return -EIO;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_SYSTEM:
        return sys_errno > 0 ? -sys_errno : -EIO;
    case EAI_FAMILY:
    case EAI_SOCKTYPE:
    case EAI_SERVICE:
    case EAI_BADFLAGS:
        return -EINVAL;
    default:
        return -EIO;
    }
}

/* On a pool thread. */
static void resolve_job(void *arg, void *out)
{
    const resolve_arg *ra = arg;
    resolve_out *ro = out;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = ra->family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = ra->ai_flags;
    struct addrinfo *res = NULL;
    errno = 0;
    int rc = getaddrinfo(ra->host, NULL, &hints, &res);
    if (rc != 0) {
        ro->rc = weft__eai_errno(rc, errno);
        return;
    }
    int n = 0;
    for (struct addrinfo *ai = res; ai && n < (int)WEFT_RESOLVE_MAX; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof ro->a[0])
            continue;
        struct sockaddr_storage *ss = &ro->a[n];
        memset(ss, 0, sizeof *ss);
        memcpy(ss, ai->ai_addr, ai->ai_addrlen);
        if (ss->ss_family == AF_INET)
            ((struct sockaddr_in *)ss)->sin_port = htons(ra->port);
        else if (ss->ss_family == AF_INET6)
            ((struct sockaddr_in6 *)ss)->sin6_port = htons(ra->port);
        else
            continue;
        n++;
    }
    freeaddrinfo(res);
    ro->rc = n > 0 ? n : -ENOENT;
}

static const char *resolve_bad(const weft_resolve *r)
{
    if (!r->host || !r->host[0])
        return "host is NULL or empty";
    if (strlen(r->host) > WEFT_RESOLVE_HOST_MAX)
        return "host longer than WEFT_RESOLVE_HOST_MAX";
    if (!r->addrs || r->cap == 0)
        return "addrs is NULL or cap is 0";
    if (r->flags & ~(WEFT_RESOLVE_NUMERIC | WEFT_RESOLVE_IPV4 | WEFT_RESOLVE_IPV6))
        return "unknown flags";
    if ((r->flags & WEFT_RESOLVE_IPV4) && (r->flags & WEFT_RESOLVE_IPV6))
        return "both WEFT_RESOLVE_IPV4 and WEFT_RESOLVE_IPV6";
    return NULL;
}

static weft_poll resolve_poll(weft_future *f, weft_cx *cx, void *out)
{
    weft_resolve *r = (weft_resolve *)f;
    int *res = out;
    if (r->state_ == R_NEW) {
        const char *bad = resolve_bad(r);
        if (bad) {
            WEFT_MISUSE("weft_resolve: %s", bad);
            r->state_ = R_DONE;
            *res = -EINVAL;
            return WEFT_READY;
        }
        resolve_arg ra;
        memset(&ra, 0, sizeof ra);
        strcpy(ra.host, r->host);
        ra.port = r->port;
        ra.family = (r->flags & WEFT_RESOLVE_IPV4) ? AF_INET
                    : (r->flags & WEFT_RESOLVE_IPV6) ? AF_INET6 : AF_UNSPEC;
        ra.ai_flags = (r->flags & WEFT_RESOLVE_NUMERIC) ? AI_NUMERICHOST : 0;
        int rc = weft__spawn_blocking(NULL, resolve_job, "weft_resolve", &ra, sizeof ra,
                                      sizeof(resolve_out), NULL, &r->join_);
        if (rc != 0) {
            r->state_ = R_DONE;
            *res = rc;
            return WEFT_READY;
        }
        r->state_ = R_WAITING;
    }
    if (r->state_ != R_WAITING)
        return WEFT_PENDING; /* polled after READY: a caller's bug */
    resolve_out ro;
    if (weft_future_poll(&r->join_.base, cx, &ro) == WEFT_PENDING)
        return WEFT_PENDING;
    int st = r->join_.status;
    weft_future_drop(&r->join_.base);
    r->state_ = R_DONE;
    if (st != 0) {
        *res = st;
        return WEFT_READY;
    }
    if (ro.rc > 0) {
        size_t n = (size_t)ro.rc < r->cap ? (size_t)ro.rc : r->cap;
        memcpy(r->addrs, ro.a, n * sizeof ro.a[0]);
        ro.rc = (int)n;
    }
    *res = ro.rc;
    return WEFT_READY;
}

static void resolve_drop(weft_future *f)
{
    weft_resolve *r = (weft_resolve *)f;
    if (r->state_ == R_WAITING)
        weft_join_cancel(&r->join_);
    r->state_ = R_DONE;
}

static const weft_future_ops resolve_ops = {
    .name = "weft_resolve",
    .out_size = sizeof(int),
    .poll = resolve_poll,
    .drop = resolve_drop,
};

void weft_resolve_init(weft_resolve *r, const char *host, uint16_t port, unsigned flags,
                       struct sockaddr_storage *addrs, size_t cap)
{
    if (!r) {
        WEFT_MISUSE("weft_resolve_init: r is NULL");
        return;
    }
    weft_future_init(&r->base, &resolve_ops, WEFT_F_SEND);
    r->host = host;
    r->port = port;
    r->flags = flags;
    r->addrs = addrs;
    r->cap = cap;
    r->state_ = R_NEW;
}
