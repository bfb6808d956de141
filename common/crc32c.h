/* crc32c.h - CRC-32C (Castagnoli), as used by the decision log records. */
#ifndef TX_CRC32C_H
#define TX_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Start with crc = 0; chain by passing the previous result. crc32c("123456789") = 0xE3069283. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

#endif
