/*
 * protocol.h - the atomic commit protocols a transaction can ask for.
 *
 * Invariants: one row per txn_protocol; an unsupported row is refused at
 * POST /v1/transactions with 400 unsupported_protocol. A protocol adds its
 * commit driver here and its states/rows to txn_fsm.c.
 */
#ifndef TXCOORD_PROTOCOL_H
#define TXCOORD_PROTOCOL_H

#include "txn.h"

typedef struct {
    txn_protocol id;
    bool supported;
    /* Drive active t to its outcome; op_mu held; see twopc_commit. */
    void (*commit)(txn *t, json_t *const *oneshot_statements);
} protocol_ops;

/* Never NULL for a valid txn_protocol. */
const protocol_ops *protocol_get(txn_protocol p);

#endif
