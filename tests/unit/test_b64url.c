/* Strict base64url: every accepted spelling is the unique unpadded one, and
 * every other byte, length or trailing-bit pattern is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "b64url.h"

static const char ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Reference encoder, bit by bit: independent of the decoder's table.
 * Writes the unpadded text and a NUL; returns its length. */
static size_t ref_encode(const unsigned char *in, size_t len, char *out)
{
    size_t bits = len * 8, o = 0;
    for (size_t pos = 0; pos < bits; pos += 6) {
        unsigned v = 0;
        for (size_t b = pos; b < pos + 6; b++) {
            unsigned bit = b < bits ? (in[b / 8] >> (7 - b % 8)) & 1 : 0;
            v = v << 1 | bit;
        }
        out[o++] = ALPHABET[v];
    }
    out[o] = '\0';
    return o;
}

/* Decodes into an exactly sized heap buffer, so ASan catches any write past
 * GH_B64URL_DECODED_MAX. Returns the decoder's result. */
static int decode(const char *in, size_t len, unsigned char *copy, size_t *out_len)
{
    unsigned char *out = malloc(GH_B64URL_DECODED_MAX(len));
    assert_non_null(out);
    int rc = gh_b64url_decode(in, len, out, out_len);
    if (rc == 0) memcpy(copy, out, *out_len);
    free(out);
    return rc;
}

static bool accepts(const char *in, size_t len)
{
    unsigned char buf[64];
    size_t n;
    assert_true(len < 80);
    return decode(in, len, buf, &n) == 0;
}

static void test_rfc4648_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *plain, *enc;
    } v[] = {{"", ""},
             {"f", "Zg"},
             {"fo", "Zm8"},
             {"foo", "Zm9v"},
             {"foob", "Zm9vYg"},
             {"fooba", "Zm9vYmE"},
             {"foobar", "Zm9vYmFy"},
             {"\xfb\xff", "-_8"},
             {"\xff\xff\xfe", "___-"}};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        unsigned char out[16];
        size_t n = 99;
        assert_int_equal(decode(v[i].enc, strlen(v[i].enc), out, &n), 0);
        assert_int_equal(n, strlen(v[i].plain));
        assert_memory_equal(out, v[i].plain, n);
    }
}

static void round_trip(const unsigned char *in, size_t len)
{
    char enc[GH_B64URL_DECODED_MAX(1024) * 2];
    unsigned char dec[1024];
    size_t elen = ref_encode(in, len, enc), n = 0;
    assert_int_equal(decode(enc, elen, dec, &n), 0);
    assert_int_equal(n, len);
    if (len) assert_memory_equal(dec, in, len);
}

static void test_round_trip_all_one_and_two_byte_strings(void **state)
{
    (void)state;
    unsigned char b[2];
    for (unsigned i = 0; i < 256; i++) {
        b[0] = (unsigned char)i;
        round_trip(b, 1);
        for (unsigned j = 0; j < 256; j++) {
            b[1] = (unsigned char)j;
            round_trip(b, 2);
        }
    }
}

static void test_round_trip_random_lengths(void **state)
{
    (void)state;
    unsigned char buf[700];
    srand(4648);
    for (size_t len = 0; len <= sizeof(buf); len++) {
        for (int rep = 0; rep < 4; rep++) {
            for (size_t i = 0; i < len; i++) buf[i] = (unsigned char)rand();
            round_trip(buf, len);
        }
    }
    memset(buf, 0xff, sizeof(buf));
    round_trip(buf, sizeof(buf));
    memset(buf, 0, sizeof(buf));
    round_trip(buf, sizeof(buf));
}

/* Every byte outside the alphabet, in every position of every length class
 * (full quantum, 2- and 3-character tails), is refused. */
static void test_every_invalid_byte(void **state)
{
    (void)state;
    size_t refused = 0;
    for (unsigned c = 0; c < 256; c++) {
        if (c != 0 && strchr(ALPHABET, (int)c)) continue;
        for (size_t len = 2; len <= 8; len++) {
            if (len % 4 == 1) continue;
            for (size_t pos = 0; pos < len; pos++) {
                char s[8];
                memset(s, 'A', sizeof(s));
                s[pos] = (char)c;
                assert_false(accepts(s, len));
                refused++;
            }
        }
    }
    assert_int_equal(refused, (256 - 64) * (2 + 3 + 4 + 6 + 7 + 8));
}

static void test_padding_and_other_alphabets(void **state)
{
    (void)state;
    static const char *bad[] = {"Zg==",  "Zm8=",     "Zg=",      "Zm9v====",   "Zm+v",
                                "Zm/v",  "Zm9v Yg",  "Zm9v\nYg", "Zm9v\r\nYg", " Zm9v",
                                "Zm9v ", "Zm9v\tYg", "=",        "====",       "Zg==Zg"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(accepts(bad[i], strlen(bad[i])));
    assert_false(accepts("Zm\0v", 4)); /* NUL inside the explicit length */
    assert_true(accepts("Zm9v\0", 4)); /* a NUL after the length is not read */
}

static void test_length_one_mod_four(void **state)
{
    (void)state;
    char s[13];
    for (size_t a = 0; a < 64; a++) {
        memset(s, 'A', sizeof(s));
        s[0] = ALPHABET[a];
        assert_false(accepts(s, 1));
        s[4] = ALPHABET[a];
        assert_false(accepts(s, 5));
        s[8] = ALPHABET[a];
        assert_false(accepts(s, 9));
        assert_false(accepts(s, 13));
    }
}

/* Of the 64 characters that may end a 2-character tail only those with the
 * low 4 bits clear are accepted (4 of them); for a 3-character tail, those
 * with the low 2 bits clear (16). */
static void test_trailing_bits(void **state)
{
    (void)state;
    for (size_t prefix = 0; prefix <= 4; prefix += 4) {
        size_t ok2 = 0, ok3 = 0;
        for (unsigned v = 0; v < 64; v++) {
            char s[9] = "QUJDQUJD";
            s[prefix + 1] = ALPHABET[v];
            bool a2 = accepts(s, prefix + 2);
            assert_int_equal(a2, (v & 0x0f) == 0);
            ok2 += a2;
            memcpy(s, "QUJDQUJD", 8);
            s[prefix + 2] = ALPHABET[v];
            bool a3 = accepts(s, prefix + 3);
            assert_int_equal(a3, (v & 0x03) == 0);
            ok3 += a3;
        }
        assert_int_equal(ok2, 4);
        assert_int_equal(ok3, 16);
    }
    assert_false(accepts("Zh", 2)); /* "f" with a stray low bit */
    assert_false(accepts("Zm9", 3));
    assert_true(accepts("Zm8", 3));
}

static void test_empty_and_failure_length(void **state)
{
    (void)state;
    unsigned char out[4];
    size_t n = 99;
    assert_int_equal(gh_b64url_decode("", 0, out, &n), 0);
    assert_int_equal(n, 0);
    n = 99;
    assert_int_equal(gh_b64url_decode("Zg=", 3, out, &n), -1);
    assert_int_equal(n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors),
        cmocka_unit_test(test_round_trip_all_one_and_two_byte_strings),
        cmocka_unit_test(test_round_trip_random_lengths),
        cmocka_unit_test(test_every_invalid_byte),
        cmocka_unit_test(test_padding_and_other_alphabets),
        cmocka_unit_test(test_length_one_mod_four),
        cmocka_unit_test(test_trailing_bits),
        cmocka_unit_test(test_empty_and_failure_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
