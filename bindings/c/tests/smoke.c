/* A C program against the C ABI: an embedded server, two clients, a group
 * message, pulled events, and refused bad input. Built and run by
 * tests/c_program.rs. Exits non-zero on the first failed check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "zerorelay.h"

static int checks = 0;
#define CHECK(cond)                                                              \
    do {                                                                         \
        checks++;                                                                \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: check failed: %s (last error: %s: %s)\n",    \
                    __FILE__, __LINE__, #cond, zr_last_error_code(),             \
                    zr_last_error());                                            \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

/* Pulls events until one contains `needle`; returns 1 if found. */
static int wait_for(zr_client *c, const char *needle) {
    for (int i = 0; i < 100; i++) {
        char *batch = NULL;
        CHECK(zr_client_next_events(c, 100, 64, &batch) == ZR_OK);
        if (batch) {
            int found = strstr(batch, needle) != NULL;
            zr_string_free(batch);
            if (found) return 1;
        }
    }
    return 0;
}

int main(void) {
    CHECK(zr_abi_version() == 1);
    CHECK(strlen(zr_version()) > 0);

    zr_server *server = NULL;
    CHECK(zr_server_start("{\"server\":{\"listen\":\"127.0.0.1:0\"}}", &server) == ZR_OK);
    char *addr = NULL;
    CHECK(zr_server_address(server, &addr) == ZR_OK);
    char url[128];
    snprintf(url, sizeof url, "ws://%s/ws", addr);
    zr_string_free(addr);

    zr_client *alice = NULL, *bob = NULL;
    CHECK(zr_client_connect(url, "{\"user\":\"alice\"}", &alice) == ZR_OK);
    CHECK(zr_client_connect(url, "{\"user\":\"bob\"}", &bob) == ZR_OK);
    CHECK(wait_for(bob, "\"type\":\"connected\""));

    uint64_t join = 0;
    CHECK(zr_client_submit(bob, "{\"type\":\"join\",\"group\":\"room\"}", &join) == ZR_OK);
    char needle[64];
    snprintf(needle, sizeof needle, "\"request\":%llu,\"ok\":true", (unsigned long long)join);
    CHECK(wait_for(bob, needle));

    uint64_t pub = 0;
    CHECK(zr_client_submit(alice, "{\"type\":\"publish\",\"group\":\"room\",\"data\":{\"n\":42}}", &pub) == ZR_OK);
    CHECK(wait_for(bob, "\"data\":{\"n\":42}"));

    uint64_t count = 0;
    CHECK(zr_server_publish(server, "room", "\"from the host\"", &count) == ZR_OK);
    CHECK(count == 1);
    CHECK(wait_for(bob, "from the host"));

    /* Bad input: a precise status and code, nothing else disturbed. */
    uint64_t id = 0;
    CHECK(zr_client_submit(NULL, "{}", &id) == ZR_ERR_INVALID_ARGUMENT);
    CHECK(strcmp(zr_last_error_code(), "invalid_argument") == 0);
    CHECK(zr_client_submit(alice, "not json", &id) == ZR_ERR_INVALID_ARGUMENT);
    CHECK(zr_client_submit(alice, "{\"type\":\"ack\",\"seq\":1}", &id) == ZR_ERR_INVALID_ARGUMENT);
    CHECK(zr_client_connect(url, "{\"nope\":1}", &bob) == ZR_ERR_INVALID_ARGUMENT);
    CHECK(strstr(zr_last_error(), "nope") != NULL);
    CHECK(zr_server_publish(server, "bad name", "1", NULL) == ZR_ERR_SERVER);
    CHECK(strcmp(zr_last_error_code(), "bad_request") == 0);
    CHECK(zr_server_send_to_user(server, "ghost", "1", NULL) == ZR_ERR_SERVER);
    CHECK(strcmp(zr_last_error_code(), "not_found") == 0);
    CHECK(zr_server_publish(server, "room", "{broken", NULL) == ZR_ERR_INVALID_ARGUMENT);

    /* A request the server refuses arrives as a reply with its code. */
    CHECK(zr_client_submit(alice, "{\"type\":\"send\",\"to\":\"ghost\",\"data\":1}", &id) == ZR_OK);
    CHECK(wait_for(alice, "\"code\":\"not_found\""));

    char *sessions = NULL;
    CHECK(zr_server_sessions(server, &sessions) == ZR_OK);
    CHECK(strstr(sessions, "\"user\":\"bob\"") != NULL);
    zr_string_free(sessions);

    /* Host handlers: a call is pulled, answered, and its answer reaches the
     * client; an answered or unknown id is refused precisely. */
    zr_server *hosted = NULL;
    CHECK(zr_server_start_with_handlers("{\"server\":{\"listen\":\"127.0.0.1:0\"}}",
                                        "{\"rpc\":[\"add\"]}", &hosted) == ZR_OK);
    CHECK(zr_server_address(hosted, &addr) == ZR_OK);
    char hosted_url[128];
    snprintf(hosted_url, sizeof hosted_url, "ws://%s/ws", addr);
    zr_string_free(addr);
    zr_client *carol = NULL;
    CHECK(zr_client_connect(hosted_url, "{\"user\":\"carol\"}", &carol) == ZR_OK);
    uint64_t rpc = 0;
    CHECK(zr_client_rpc(carol, "add", "[2,3]", &rpc) == ZR_OK);
    char *calls = NULL;
    for (int i = 0; i < 100 && calls == NULL; i++) {
        CHECK(zr_server_next_calls(hosted, 100, 8, &calls) == ZR_OK);
    }
    CHECK(calls != NULL);
    CHECK(strstr(calls, "\"kind\":\"rpc\"") != NULL);
    CHECK(strstr(calls, "\"method\":\"add\"") != NULL);
    CHECK(strstr(calls, "\"data\":[2,3]") != NULL);
    unsigned long long call_id = 0;
    const char *at = strstr(calls, "\"id\":");
    CHECK(at != NULL && sscanf(at, "\"id\":%llu", &call_id) == 1);
    zr_string_free(calls);
    uint64_t waiting = 0;
    CHECK(zr_server_pending_calls(hosted, &waiting) == ZR_OK && waiting == 1);
    CHECK(zr_server_answer(hosted, call_id, "{\"ok\":5}") == ZR_OK);
    snprintf(needle, sizeof needle, "\"request\":%llu,\"ok\":true,\"data\":5", (unsigned long long)rpc);
    CHECK(wait_for(carol, needle));
    CHECK(zr_server_pending_calls(hosted, &waiting) == ZR_OK && waiting == 0);
    CHECK(zr_server_answer(hosted, call_id, "{\"ok\":6}") == ZR_ERR_INVALID_ARGUMENT);
    CHECK(strcmp(zr_last_error_code(), "unknown_call") == 0);
    CHECK(zr_server_answer(hosted, 424242, "{}") == ZR_ERR_INVALID_ARGUMENT);
    CHECK(strcmp(zr_last_error_code(), "unknown_call") == 0);
    zr_client_free(carol);
    CHECK(zr_server_stop(hosted) == ZR_OK);
    CHECK(zr_server_next_calls(hosted, 0, 8, &calls) == ZR_ERR_CLOSED);
    zr_server_free(hosted);

    CHECK(zr_client_close(alice) == ZR_OK);
    CHECK(wait_for(alice, "\"type\":\"closed\""));
    /* Once every event is read, pulling reports the end. */
    zr_status st = ZR_OK;
    for (int i = 0; i < 100 && st == ZR_OK; i++) {
        char *e = NULL;
        st = zr_client_next_event(alice, 20, &e);
        zr_string_free(e);
    }
    CHECK(st == ZR_ERR_CLOSED);
    zr_client_free(alice);
    zr_client_free(bob);
    CHECK(zr_server_stop(server) == ZR_OK);
    zr_server_free(server);
    printf("c smoke: %d checks passed\n", checks);
    return 0;
}
