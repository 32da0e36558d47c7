/* Private: what io/resolve.c shares with its tests — how getaddrinfo's
 * EAI_* codes become negative errnos (the table in weft/io.h). */
#ifndef WEFT_IO_BLOCKING_IO_H
#define WEFT_IO_BLOCKING_IO_H

/* `eai` a getaddrinfo result other than 0; `sys_errno` the errno it left
 * (read for EAI_SYSTEM). */
int weft__eai_errno(int eai, int sys_errno);

#endif
