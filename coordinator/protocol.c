/*
 * protocol.c - the table of commit protocols: 2pc (twopc.c), 3pc (threepc.c).
 *
 * Invariants: indexed by txn_protocol; commit is non-NULL when supported.
 */
#include "protocol.h"

#include "threepc.h"
#include "twopc.h"

static const protocol_ops protocols[PROTO_COUNT] = {
    [PROTO_2PC] = {PROTO_2PC, true, twopc_commit},
    [PROTO_3PC] = {PROTO_3PC, true, threepc_commit},
};

const protocol_ops *protocol_get(txn_protocol p)
{
    return &protocols[(unsigned)p < PROTO_COUNT ? p : PROTO_2PC];
}
