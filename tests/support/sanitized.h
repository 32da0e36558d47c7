/* Test support: WEFT_TEST_SANITIZED is defined in builds under
 * AddressSanitizer or ThreadSanitizer (GCC and Clang), which run many
 * times slower, so long concurrent tests can shrink their iterations. */
#ifndef WEFT_TESTS_SANITIZED_H
#define WEFT_TESTS_SANITIZED_H

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define WEFT_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define WEFT_TEST_SANITIZED 1
#endif
#endif

#endif
