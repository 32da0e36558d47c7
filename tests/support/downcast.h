/* Test support: the downcast at the top of every hand-written poll (and
 * drop): a future or stream is the first member, `base`, of the struct
 * that implements it, so a pointer to it is a pointer to that struct. */
#ifndef WEFT_TESTS_DOWNCAST_H
#define WEFT_TESTS_DOWNCAST_H

/* Declares `self`, the future or stream `base` as the `type *` whose first
 * member it is. */
#define DOWNCAST(type, self, base) type *self = (type *)(base)

#endif
