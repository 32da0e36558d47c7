/* expect: incompatible type */
/* WEFT_GEN_YIELD(value) assigns to the typed item: a value of another type
 * is a compile-time diagnostic (here an error even without -Werror). */
#include "weft/co.h"

typedef struct point {
    int x, y;
} point;

typedef struct points {
    weft_stream base;
    weft_co co;
} points;

WEFT_GEN_FN(points, point)
{
    WEFT_GEN_BEGIN;
    WEFT_GEN_YIELD(42);
    WEFT_GEN_END;
}

const weft_stream_ops *compile_fail_ops(void);
const weft_stream_ops *compile_fail_ops(void) { return &points_ops; }
