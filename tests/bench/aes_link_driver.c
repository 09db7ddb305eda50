/*
 * The backend's AES fast path driven as the azihsm device drives it, from C, so that the driver costs
 * next to nothing beside the backend (tests/bench/bench_aes_backend.py, side "as the device, C").
 *
 * Usage: aes_link_driver SOCKET FRAMES
 *   FRAMES holds length-prefixed frames (u32 little-endian length, then the frame): first the HELLO,
 *   then, for each request size, a u32 count S, the u32 data length every answer must carry, and S
 *   AES_REQUEST frames, one per stream.
 * Then, one line per measurement on stdin: "SIZE_INDEX STREAMS SECONDS"; for each, stream i keeps its
 * request in flight (msg_id = n * STREAMS + i, sent again as soon as its answer is in) for SECONDS,
 * the last answers are drained, and one line "ANSWERED ELAPSED_S" is printed. Every answer must be an
 * AES_RESPONSE with status 0 and the data length given for its size; anything else ends the program
 * with a message and exit status 1.
 *
 * Frame layout (docs/link-protocol.md, "Framing"): a 16-byte header (magic "AZHL", version, type,
 * flags u16, msg_id u32, body length u32, little-endian), then the body. AES_RESPONSE (type 0x86): status
 * u16 at body offset 2, payload length u32 at body offset 40, the payload from offset 44.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define HEADER 16
#define RESPONSE_FIXED 44
#define TYPE_AES_RESPONSE 0x86
#define TYPE_HELLO_ACK 0x81
#define MAX_SIZES 4
#define MAX_STREAMS 64

struct frame { uint8_t *bytes; uint32_t len; };

static struct frame hello;
static struct frame requests[MAX_SIZES][MAX_STREAMS];
static uint32_t stream_count[MAX_SIZES], answer_len[MAX_SIZES], sizes;
static uint8_t *rx;
static size_t rx_cap, rx_start, rx_end;
static int sock;

static void die(const char *what)
{
    fprintf(stderr, "aes_link_driver: %s\n", what);
    exit(1);
}

static uint32_t le32(const uint8_t *p)
{
    return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24;
}

static struct frame read_frame_file(FILE *f)
{
    uint8_t len[4];
    struct frame fr;
    if (fread(len, 1, 4, f) != 4)
        die("frames file ends early");
    fr.len = le32(len);
    fr.bytes = malloc(fr.len);
    if (!fr.bytes || fread(fr.bytes, 1, fr.len, f) != fr.len)
        die("frames file ends inside a frame");
    return fr;
}

static void send_all(const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t sent = send(sock, p, n, 0);
        if (sent <= 0)
            die("send failed");
        p += sent;
        n -= sent;
    }
}

/* One whole frame from the socket: returns a pointer to its header inside rx (valid until the next call). */
static const uint8_t *next_frame(void)
{
    for (;;) {
        size_t have = rx_end - rx_start;
        if (have >= HEADER) {
            size_t whole = HEADER + (size_t)le32(rx + rx_start + 12);
            if (whole > rx_cap)
                die("answer larger than the receive buffer");
            if (have >= whole) {
                const uint8_t *f = rx + rx_start;
                rx_start += whole;
                return f;
            }
            if (rx_start + whole > rx_cap) {
                memmove(rx, rx + rx_start, have);
                rx_start = 0;
                rx_end = have;
            }
        } else if (rx_start && rx_start + HEADER > rx_cap) {
            memmove(rx, rx + rx_start, have);
            rx_start = 0;
            rx_end = have;
        }
        ssize_t got = recv(sock, rx + rx_end, rx_cap - rx_end, 0);
        if (got <= 0)
            die("the backend closed the connection");
        rx_end += got;
    }
}

static void send_request(uint32_t size, uint32_t stream, uint32_t streams, uint32_t *next)
{
    struct frame *fr = &requests[size][stream];
    put_le32(fr->bytes + 8, (*next)++ * streams + stream);
    send_all(fr->bytes, fr->len);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    FILE *f;
    uint32_t size, streams, next = 1;
    double seconds;

    if (argc != 3)
        die("usage: aes_link_driver SOCKET FRAMES");
    f = fopen(argv[2], "rb");
    if (!f)
        die("cannot open the frames file");
    hello = read_frame_file(f);
    while (sizes < MAX_SIZES) {
        uint8_t count[8];
        if (fread(count, 1, 8, f) != 8)
            break;
        stream_count[sizes] = le32(count);
        answer_len[sizes] = le32(count + 4);
        if (stream_count[sizes] > MAX_STREAMS)
            die("too many streams");
        for (uint32_t i = 0; i < stream_count[sizes]; i++)
            requests[sizes][i] = read_frame_file(f);
        sizes++;
    }
    fclose(f);
    rx_cap = 4u << 20;
    rx = malloc(rx_cap);
    sock = socket(AF_UNIX, SOCK_STREAM, 0);
    if (!rx || sock < 0 || strlen(argv[1]) >= sizeof(addr.sun_path))
        die("no socket");
    strcpy(addr.sun_path, argv[1]);
    if (connect(sock, (struct sockaddr *)&addr, sizeof(addr)) < 0)
        die("cannot connect");
    send_all(hello.bytes, hello.len);
    const uint8_t *ack = next_frame();
    if (ack[5] != TYPE_HELLO_ACK)
        die("no HELLO_ACK");
    printf("ready\n");
    fflush(stdout);

    while (scanf("%u %u %lf", &size, &streams, &seconds) == 3) {
        uint32_t in_flight = streams, answered = 0;
        if (size >= sizes || streams == 0 || streams > stream_count[size])
            die("no such measurement");
        double start = now(), stop = start + seconds;
        for (uint32_t i = 0; i < streams; i++)
            send_request(size, i, streams, &next);
        while (in_flight) {
            const uint8_t *a = next_frame();
            uint32_t stream = le32(a + 8) % streams;
            if (a[5] != TYPE_AES_RESPONSE || le32(a + 12) < RESPONSE_FIXED ||
                (a[HEADER + 2] | a[HEADER + 3] << 8) != 0 || le32(a + HEADER + 40) != answer_len[size])
                die("an answer is not a successful AES_RESPONSE of the request's size");
            answered++;
            if (now() < stop)
                send_request(size, stream, streams, &next);
            else
                in_flight--;
        }
        printf("%u %.6f\n", answered, now() - start);
        fflush(stdout);
    }
    return 0;
}
