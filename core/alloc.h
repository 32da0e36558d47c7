/* Private: allocation through the pluggable allocator (weft_set_allocator). */
#ifndef WEFT_CORE_ALLOC_H
#define WEFT_CORE_ALLOC_H

#include <stddef.h>

void *weft__alloc(size_t size);
void *weft__calloc(size_t size);
void weft__free(void *p);


#endif
