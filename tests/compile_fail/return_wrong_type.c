/* expect: incompatible type */
/* WEFT_FN_RETURN(value) assigns to the typed output: a value of another
 * type is a compile-time diagnostic (here an error even without -Werror). */
#include "weft/co.h"

typedef struct pair {
    int a, b;
} pair;

typedef struct paired {
    weft_future base;
    weft_co co;
} paired;

WEFT_ASYNC_FN(paired, pair)
{
    WEFT_FN_BEGIN;
    WEFT_FN_RETURN(42);
    WEFT_FN_END;
}

const weft_future_ops *compile_fail_ops(void);
const weft_future_ops *compile_fail_ops(void) { return &paired_ops; }
