/*
 * txproxy.c - a TCP proxy for one link that delivers every byte D +/- J ms
 * after it was received, in both directions, and can cut the link on demand
 * (a simulated network partition). It stands in for distance between the
 * coordinator and the agents, since traffic shaping (tc netem) is not
 * available on our build machines.
 *
 *   txproxy --listen HOST:PORT --target HOST:PORT [--delay-ms D] [--jitter-ms J]
 *           [--control FILE]
 *
 * Invariants:
 *   - Each direction of each connection is a FIFO of chunks, each stamped at
 *     read time with due = now + D + U(-J, +J), clamped to >= now and to >= the
 *     previous chunk's due: jitter stretches gaps but never reorders bytes.
 *   - A FIN is a chunk too: the half-close reaches the other side D ms later,
 *     after every byte before it. A reset or an error on one side resets the
 *     other side at once (not delayed).
 *   - With D = J = 0 a chunk is written as soon as it is read: a plain proxy.
 *   - One thread. epoll for the sockets, one timerfd armed (absolute
 *     CLOCK_MONOTONIC) at the earliest due chunk or the next control check.
 *     Each wake-up scans the connections for due chunks: O(connections), fine
 *     for the hundreds a benchmark opens.
 *   - A direction with more than QUEUE_MAX bytes queued stops reading its
 *     source until it drains (the sender sees TCP back-pressure, as on a
 *     long fat link).
 *   - A connection is freed only at the end of a loop iteration (graveyard),
 *     so events later in the same epoll batch never touch freed memory.
 *   - Signal handlers only set flags; SIGTERM/SIGINT are blocked except
 *     inside epoll_pwait, so a stop request is never lost.
 *
 * Partition control (--control FILE, re-read every 50 ms; a missing or empty
 * file means pass; the first word counts):
 *   pass   forward everything.
 *   drop   a blackhole: existing connections are reset (RST, SO_LINGER 0);
 *          new ones are accepted and held: nothing is read from them and
 *          nothing reaches the target, so the client waits for its own
 *          timeout (the most faithful partition we can build on loopback:
 *          the kernel completes the handshake, so connect() itself succeeds).
 *          On pass, held connections that are still open are connected to the
 *          target and forwarded from then on (a retransmission after the
 *          partition healed).
 *   reset  fast failures: existing and new connections are reset at once;
 *          clients get "connection reset by peer" instead of a timeout.
 *   sever  a partition only the client hears about: existing connections are
 *          reset towards the client, while their target side stays open and
 *          is never read nor written again (a server waiting on its socket
 *          sees nothing, as across a real partition until its keepalives
 *          give up); new connections are held as with drop. The orphaned
 *          target sockets are closed when txproxy exits.
 * One log line per state change, with the number of connections affected.
 * SIGTERM/SIGINT: every connection is closed, exit 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#define CHUNK_MAX (64 * 1024)
#define QUEUE_MAX (4u * 1024 * 1024)
#define CONTROL_EVERY_US 50000
#define MAX_EVENTS 128

typedef enum { LINK_PASS, LINK_DROP, LINK_RESET, LINK_SEVER } link_state;
static const char *const link_state_names[] = {"pass", "drop", "reset", "sever"};

/* One chunk of bytes (or a FIN marker) waiting for its delivery time. */
typedef struct chunk {
    struct chunk *next;
    int64_t due_us;
    bool fin;
    size_t len, off;
    char data[];
} chunk;

/* One direction of a connection: bytes read from src, written to dst. */
typedef struct {
    chunk *head, *tail;
    size_t queued;     /* bytes not yet written */
    int64_t last_due_us;
    bool eof_read;     /* src said FIN (queued as a marker) */
    bool fin_sent;     /* the marker was delivered: shutdown(dst, SHUT_WR) */
    bool blocked;      /* dst's send buffer is full: waiting for EPOLLOUT */
} direction;

struct conn;
/* What an epoll event points at. */
typedef struct {
    int kind;          /* EP_LISTEN, EP_TIMER, EP_CLIENT, EP_UPSTREAM */
    struct conn *c;    /* NULL for listen/timer */
} endpoint;
enum { EP_LISTEN, EP_TIMER, EP_CLIENT, EP_UPSTREAM };

typedef struct conn {
    struct conn *prev, *next; /* live list, or the graveyard (next only) */
    uint64_t id;
    int cfd, ufd;             /* client side, upstream (target) side; -1 when closed */
    uint32_t cmask, umask;    /* current epoll interest */
    bool connecting;          /* upstream connect() in progress */
    bool held;                /* accepted during "drop": not forwarded */
    bool dead;
    direction up;             /* client -> target */
    direction down;           /* target -> client */
    endpoint cep, uep;
} conn;

static char *opt_listen, *opt_target, *opt_control, *opt_log_level, *opt_delay, *opt_jitter;

static const opt_def options[] = {
    {"listen", OPT_STRING, NULL, 0, 0, true, "HOST:PORT", "address to accept connections on",
     &opt_listen},
    {"target", OPT_STRING, NULL, 0, 0, true, "HOST:PORT", "address every connection is relayed to",
     &opt_target},
    {"delay-ms", OPT_STRING, "0", 0, 0, false, "D",
     "one-way delay added to every byte, each direction (round trip +2D); fractions allowed",
     &opt_delay},
    {"jitter-ms", OPT_STRING, "0", 0, 0, false, "J",
     "uniform jitter: each chunk is delayed D-J..D+J ms (never reordered)", &opt_jitter},
    {"control", OPT_STRING, NULL, 0, 0, false, "FILE",
     "partition control, re-read every 50 ms: pass | drop (blackhole) | reset (RST) | sever "
     "(RST to the client only, the target side left open and silent)",
     &opt_control},
    {"log-level", OPT_STRING, "info", 0, 0, false, "LEVEL", "debug, info, warn or error",
     &opt_log_level},
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static int epfd = -1, lfd = -1, tfd = -1;
static int *orphans;       /* target sockets of severed connections, left open */
static size_t norphans, orphans_cap;
static struct sockaddr_storage target_addr;
static socklen_t target_len;
static conn *live;      /* doubly linked */
static conn *graveyard; /* freed at the end of the iteration */
static size_t nlive;
static uint64_t next_conn_id = 1;
static link_state state = LINK_PASS;
static int64_t delay_us, jitter_us;
static uint64_t rng_state;

static uint64_t rng_next(void)
{
    /* xorshift64*: plenty for jitter */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

/* ---- sockets ---- */

static void set_nodelay(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Close fd so that the peer sees RST, not FIN. */
static void close_rst(int fd)
{
    if (fd < 0)
        return;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

static bool resolve(const char *spec, bool passive, struct sockaddr_storage *out,
                    socklen_t *outlen)
{
    char *host = NULL;
    int port = 0;
    if (!parse_host_port(spec, &host, &port)) {
        fprintf(stderr, "txproxy: expected HOST:PORT, got '%s'\n", spec);
        return false;
    }
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    if (passive)
        hints.ai_flags = AI_PASSIVE;
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0 || !res) {
        fprintf(stderr, "txproxy: cannot resolve '%s': %s\n", spec, gai_strerror(rc));
        free(host);
        return false;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *outlen = res->ai_addrlen;
    freeaddrinfo(res);
    free(host);
    return true;
}

/* ---- epoll interest ---- */

/* Bring fd's epoll interest from *cur to want; 0 = not in the set (a socket
 * whose both directions are finished is removed, or its EPOLLHUP would spin). */
static void ep_set(int fd, uint32_t *cur, uint32_t want, endpoint *ep)
{
    if (fd < 0 || *cur == want)
        return;
    struct epoll_event ev = {.events = want, .data.ptr = ep};
    int op = want == 0 ? EPOLL_CTL_DEL : *cur == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (epoll_ctl(epfd, op, fd, &ev) != 0)
        log_warn("epoll_ctl(%d) fd %d: %s", op, fd, strerror(errno));
    *cur = want;
}

/* Recompute what we wait for on both sockets of c. */
static void update_interest(conn *c)
{
    uint32_t cm = 0, um = 0;
    if (c->held) {
        cm = EPOLLRDHUP; /* only notice the client giving up */
    } else {
        if (!c->up.eof_read && c->up.queued < QUEUE_MAX)
            cm |= EPOLLIN;
        if (c->down.blocked)
            cm |= EPOLLOUT;
        if (c->connecting) {
            um = EPOLLOUT;
        } else {
            if (!c->down.eof_read && c->down.queued < QUEUE_MAX)
                um |= EPOLLIN;
            if (c->up.blocked)
                um |= EPOLLOUT;
        }
    }
    ep_set(c->cfd, &c->cmask, cm, &c->cep);
    ep_set(c->ufd, &c->umask, um, &c->uep);
}

static bool ep_add(int fd, uint32_t *cur, uint32_t want, endpoint *ep)
{
    struct epoll_event ev = {.events = want, .data.ptr = ep};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        log_error("epoll_ctl(ADD) fd %d: %s", fd, strerror(errno));
        return false;
    }
    *cur = want;
    return true;
}

/* ---- connections ---- */

static void dir_free(direction *d)
{
    chunk *k = d->head;
    while (k) {
        chunk *n = k->next;
        free(k);
        k = n;
    }
    memset(d, 0, sizeof(*d));
}

/* Close both sockets (RST when rst) and move c to the graveyard. */
static void conn_close(conn *c, bool rst, const char *why)
{
    if (c->dead)
        return;
    c->dead = true;
    log_debug("conn %llu closed (%s%s)", (unsigned long long)c->id, why, rst ? ", reset" : "");
    if (rst) {
        close_rst(c->cfd);
        close_rst(c->ufd);
    } else {
        if (c->cfd >= 0)
            close(c->cfd);
        if (c->ufd >= 0)
            close(c->ufd);
    }
    c->cfd = c->ufd = -1; /* close() removed them from the epoll set */
    dir_free(&c->up);
    dir_free(&c->down);
    if (c->prev)
        c->prev->next = c->next;
    else
        live = c->next;
    if (c->next)
        c->next->prev = c->prev;
    nlive--;
    c->prev = NULL;
    c->next = graveyard;
    graveyard = c;
}

static void bury(void)
{
    while (graveyard) {
        conn *n = graveyard->next;
        free(graveyard);
        graveyard = n;
    }
}

/* Start the non-blocking connect to the target. false: c was closed. */
static bool conn_connect(conn *c)
{
    int fd = socket(target_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_warn("conn %llu: socket: %s", (unsigned long long)c->id, strerror(errno));
        conn_close(c, true, "no socket");
        return false;
    }
    set_nodelay(fd);
    c->ufd = fd;
    c->umask = 0;
    if (connect(fd, (struct sockaddr *)&target_addr, target_len) != 0 && errno != EINPROGRESS) {
        log_debug("conn %llu: connect to %s: %s", (unsigned long long)c->id, opt_target,
                  strerror(errno));
        conn_close(c, true, "connect failed");
        return false;
    }
    c->connecting = true;
    if (!ep_add(fd, &c->umask, EPOLLOUT, &c->uep)) {
        conn_close(c, true, "epoll");
        return false;
    }
    return true;
}

static void accept_all(void)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                log_warn("accept: %s", strerror(errno));
            return;
        }
        if (state == LINK_RESET) {
            close_rst(fd);
            continue;
        }
        set_nodelay(fd);
        conn *c = xcalloc(1, sizeof(*c));
        c->id = next_conn_id++;
        c->cfd = fd;
        c->ufd = -1;
        c->cep = (endpoint){EP_CLIENT, c};
        c->uep = (endpoint){EP_UPSTREAM, c};
        c->next = live;
        if (live)
            live->prev = c;
        live = c;
        nlive++;
        c->held = (state == LINK_DROP || state == LINK_SEVER);
        if (!ep_add(fd, &c->cmask, c->held ? EPOLLRDHUP : EPOLLIN, &c->cep)) {
            conn_close(c, true, "epoll");
            continue;
        }
        log_debug("conn %llu accepted%s", (unsigned long long)c->id, c->held ? " (held)" : "");
        if (!c->held)
            (void)conn_connect(c);
    }
}

/* ---- queues ---- */

static int64_t stamp(direction *d, int64_t now)
{
    int64_t due = now + delay_us;
    if (jitter_us > 0)
        due += (int64_t)(rng_next() % (uint64_t)(2 * jitter_us + 1)) - jitter_us;
    if (due < now)
        due = now;
    if (due < d->last_due_us)
        due = d->last_due_us;
    d->last_due_us = due;
    return due;
}

static void enqueue(direction *d, const char *buf, size_t len, bool fin, int64_t now)
{
    chunk *k = xmalloc(sizeof(*k) + len);
    k->next = NULL;
    k->due_us = stamp(d, now);
    k->fin = fin;
    k->len = len;
    k->off = 0;
    if (len)
        memcpy(k->data, buf, len);
    if (d->tail)
        d->tail->next = k;
    else
        d->head = k;
    d->tail = k;
    d->queued += len;
}

/* Write every due chunk of d to dst. false: c was closed. */
static bool flush_dir(conn *c, direction *d, int dst, int64_t now)
{
    while (d->head && d->head->due_us <= now) {
        chunk *k = d->head;
        if (k->fin) {
            (void)shutdown(dst, SHUT_WR);
            d->fin_sent = true;
        } else {
            while (k->off < k->len) {
                ssize_t w = send(dst, k->data + k->off, k->len - k->off, MSG_NOSIGNAL);
                if (w > 0) {
                    k->off += (size_t)w;
                    d->queued -= (size_t)w;
                    continue;
                }
                if (w < 0 && errno == EINTR)
                    continue;
                if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                    d->blocked = true;
                    return true;
                }
                conn_close(c, true, "write failed");
                return false;
            }
        }
        d->head = k->next;
        if (!d->head)
            d->tail = NULL;
        free(k);
    }
    d->blocked = false;
    return true;
}

/* Deliver what is due in both directions; close c once both FINs went through. */
static void flush_conn(conn *c, int64_t now)
{
    if (c->dead || c->held)
        return;
    if (!c->connecting && !c->up.blocked && !flush_dir(c, &c->up, c->ufd, now))
        return;
    if (!c->down.blocked && !flush_dir(c, &c->down, c->cfd, now))
        return;
    if (c->up.fin_sent && c->down.fin_sent) {
        conn_close(c, false, "both sides closed");
        return;
    }
    update_interest(c);
}

/* Read once from the side that has data. */
static void read_side(conn *c, bool from_client, int64_t now)
{
    int fd = from_client ? c->cfd : c->ufd;
    direction *d = from_client ? &c->up : &c->down;
    if (d->eof_read)
        return;
    char buf[CHUNK_MAX];
    ssize_t r = recv(fd, buf, sizeof(buf), 0);
    if (r > 0) {
        enqueue(d, buf, (size_t)r, false, now);
    } else if (r == 0) {
        d->eof_read = true;
        enqueue(d, NULL, 0, true, now);
    } else {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        conn_close(c, true, from_client ? "client read error" : "target read error");
        return;
    }
    flush_conn(c, now);
}

/* One socket of c is writable and/or readable: the direction that writes to
 * it may go on, then what it has is read. */
static void on_ready(conn *c, bool client_side, uint32_t ev, int64_t now)
{
    if (ev & EPOLLOUT) {
        (client_side ? &c->down : &c->up)->blocked = false;
        flush_conn(c, now);
        if (c->dead)
            return;
    }
    if (ev & (EPOLLIN | EPOLLHUP))
        read_side(c, client_side, now);
}

static void on_event(endpoint *ep, uint32_t ev, int64_t now)
{
    conn *c = ep->c;
    if (c->dead)
        return;
    if ((ev & EPOLLERR) && !(ep->kind == EP_UPSTREAM && c->connecting)) {
        conn_close(c, true, ep->kind == EP_CLIENT ? "client socket error" : "target socket error");
        return;
    }
    if (ep->kind == EP_CLIENT) {
        if (c->held) {
            if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                conn_close(c, false, "held client gave up");
            return;
        }
        on_ready(c, true, ev, now);
        return;
    }
    /* upstream */
    if (c->connecting) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->ufd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err != 0) {
            log_debug("conn %llu: connect to %s: %s", (unsigned long long)c->id, opt_target,
                      strerror(err));
            conn_close(c, true, "connect failed");
            return;
        }
        if (!(ev & EPOLLOUT))
            return;
        c->connecting = false;
        flush_conn(c, now);
        return;
    }
    on_ready(c, false, ev, now);
}

/* ---- partition control ---- */

static link_state read_control(void)
{
    if (!opt_control)
        return LINK_PASS;
    FILE *f = fopen(opt_control, "r");
    if (!f)
        return LINK_PASS; /* missing = pass */
    char word[32] = "";
    int n = fscanf(f, "%31s", word);
    fclose(f);
    if (n != 1 || strcmp(word, "pass") == 0)
        return LINK_PASS;
    if (strcmp(word, "drop") == 0)
        return LINK_DROP;
    if (strcmp(word, "reset") == 0)
        return LINK_RESET;
    if (strcmp(word, "sever") == 0)
        return LINK_SEVER;
    static char warned[32];
    if (strcmp(warned, word) != 0) {
        log_warn("%s: '%s' is not pass, drop, reset or sever; keeping %s", opt_control, word,
                 link_state_names[state]);
        snprintf(warned, sizeof(warned), "%s", word);
    }
    return state;
}

static void apply_control(link_state want)
{
    if (want == state)
        return;
    link_state was = state;
    state = want;
    size_t reset = 0, released = 0;
    for (conn *c = live, *next; c; c = next) {
        next = c->next;
        if (want == LINK_SEVER && !c->held) {
            /* Keep the target side open and silent: out of the epoll set,
             * never closed until exit. */
            if (c->ufd >= 0) {
                (void)epoll_ctl(epfd, EPOLL_CTL_DEL, c->ufd, NULL);
                if (norphans == orphans_cap) {
                    orphans_cap = orphans_cap ? 2 * orphans_cap : 16;
                    orphans = xrealloc(orphans, orphans_cap * sizeof(*orphans));
                }
                orphans[norphans++] = c->ufd;
                c->ufd = -1;
            }
            conn_close(c, true, "severed");
            reset++;
        } else if (want == LINK_RESET || (want == LINK_DROP && !c->held)) {
            conn_close(c, true, "partition");
            reset++;
        } else if (want == LINK_PASS && c->held) {
            c->held = false;
            released++;
            if (conn_connect(c))
                update_interest(c);
        }
    }
    log_info("%s -> %s: link %s (%s -> %s): %zu connections reset, %zu held connections "
             "forwarded; new connections are %s",
             opt_listen, opt_target, want == LINK_PASS ? "up" : "cut", link_state_names[was],
             link_state_names[want], reset, released,
             want == LINK_PASS   ? "forwarded"
             : want == LINK_DROP || want == LINK_SEVER ? "held (blackhole)"
                                                       : "reset");
}

/* ---- timer ---- */

static void arm_timer(int64_t at_us)
{
    struct itimerspec its;
    memset(&its, 0, sizeof(its));
    its.it_value.tv_sec = at_us / 1000000;
    its.it_value.tv_nsec = (at_us % 1000000) * 1000;
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
        its.it_value.tv_nsec = 1; /* zero would disarm */
    if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) != 0)
        log_warn("timerfd_settime: %s", strerror(errno));
}

/* Earliest due chunk that can be written now (not blocked, target connected). */
static int64_t next_due(int64_t limit)
{
    int64_t best = limit;
    for (conn *c = live; c; c = c->next) {
        if (c->held)
            continue;
        if (!c->connecting && !c->up.blocked && c->up.head && c->up.head->due_us < best)
            best = c->up.head->due_us;
        if (!c->down.blocked && c->down.head && c->down.head->due_us < best)
            best = c->down.head->due_us;
    }
    return best;
}

/* ---- main ---- */

/* "2.5" (ms) -> 2500 us; 0..600000 ms. Prints one line and returns false if bad. */
static bool parse_ms(const char *name, const char *text, int64_t *us)
{
    char *end;
    errno = 0;
    double ms = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !(ms >= 0.0 && ms <= 600000.0)) {
        fprintf(stderr, "txproxy: --%s: '%s' is not a number of ms in 0..600000\n", name, text);
        return false;
    }
    *us = (int64_t)(ms * 1000.0 + 0.5);
    return true;
}

static bool setup(void)
{
    struct sockaddr_storage la;
    socklen_t llen;
    if (!resolve(opt_listen, true, &la, &llen) || !resolve(opt_target, false, &target_addr,
                                                           &target_len))
        return false;
    lfd = socket(la.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(lfd, (struct sockaddr *)&la, llen) != 0 || listen(lfd, 1024) != 0) {
        log_error("cannot listen on %s: %s", opt_listen, strerror(errno));
        return false;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (epfd < 0 || tfd < 0) {
        log_error("epoll/timerfd: %s", strerror(errno));
        return false;
    }
    static endpoint lep = {EP_LISTEN, NULL}, tep = {EP_TIMER, NULL};
    uint32_t dummy;
    return ep_add(lfd, &dummy, EPOLLIN, &lep) && ep_add(tfd, &dummy, EPOLLIN, &tep);
}

int main(int argc, char **argv)
{
    log_init("txproxy", LOG_INFO);
    if (!opts_parse(options, ARRAY_LEN(options), argc, argv, "txproxy",
                    "TCP proxy that delays every byte by D+/-J ms each way and can cut the link "
                    "(--control FILE: pass | drop | reset | sever)"))
        return 2;
    log_level lvl;
    if (!log_level_parse(opt_log_level, &lvl)) {
        fprintf(stderr, "txproxy: --log-level: unknown level '%s'\n", opt_log_level);
        return 2;
    }
    if (!parse_ms("delay-ms", opt_delay, &delay_us) || !parse_ms("jitter-ms", opt_jitter, &jitter_us))
        return 2;
    if (jitter_us > delay_us) {
        fprintf(stderr, "txproxy: --jitter-ms: must not exceed --delay-ms\n");
        return 2;
    }
    log_init("txproxy", lvl);
    rng_state = (uint64_t)now_us() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ULL;

    /* SIGTERM/SIGINT only get through inside epoll_pwait: no lost stop request. */
    sigset_t block, waitmask;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &waitmask);
    sigdelset(&waitmask, SIGTERM);
    sigdelset(&waitmask, SIGINT);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (!setup())
        return 1;
    int64_t now = now_us();
    apply_control(read_control());
    log_info("txproxy listening on %s -> %s, one-way delay %.3f ms, jitter %.3f ms, control %s "
             "(%s)",
             opt_listen, opt_target, (double)delay_us / 1000.0, (double)jitter_us / 1000.0,
             opt_control ? opt_control : "none", link_state_names[state]);

    int64_t next_control = now + CONTROL_EVERY_US;
    struct epoll_event evs[MAX_EVENTS];
    while (!stop_requested) {
        arm_timer(next_due(opt_control ? next_control : now + 3600LL * 1000000));
        int n = epoll_pwait(epfd, evs, MAX_EVENTS, -1, &waitmask);
        if (n < 0 && errno != EINTR) {
            log_error("epoll_pwait: %s", strerror(errno));
            break;
        }
        now = now_us();
        for (int i = 0; i < n; i++) {
            endpoint *ep = evs[i].data.ptr;
            if (ep->kind == EP_LISTEN) {
                accept_all();
            } else if (ep->kind == EP_TIMER) {
                uint64_t ticks;
                (void)!read(tfd, &ticks, sizeof(ticks));
            } else {
                on_event(ep, evs[i].events, now);
            }
        }
        now = now_us();
        if (opt_control && now >= next_control) {
            apply_control(read_control());
            next_control = now + CONTROL_EVERY_US;
        }
        for (conn *c = live, *next; c; c = next) {
            next = c->next; /* flush_conn may move c to the graveyard */
            flush_conn(c, now);
        }
        bury();
    }
    size_t open = nlive;
    while (live)
        conn_close(live, false, "shutdown");
    bury();
    for (size_t i = 0; i < norphans; i++)
        close(orphans[i]);
    free(orphans);
    close(lfd);
    close(tfd);
    close(epfd);
    log_info("txproxy stopping: %zu connections closed", open);
    return 0;
}
