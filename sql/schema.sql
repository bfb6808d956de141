-- schema.sql - demo/test schema loaded into every participant database (txdemo).
--
-- Idempotent: safe to load again into a database that already has it.
--   accounts  - one row per bank account held by this participant; the check
--               constraint makes an overdraft an SQL error (23514), which the
--               tests use as a "branch fails" case.
--   transfers - marker rows: a transfer writes one row with its id into every
--               database it touches, so the bank checker can verify that a
--               transfer is present in all of its databases or in none.
CREATE TABLE IF NOT EXISTS accounts (
    id      int PRIMARY KEY,
    balance bigint NOT NULL CHECK (balance >= 0)
);

CREATE TABLE IF NOT EXISTS transfers (
    id         text PRIMARY KEY,
    amount     bigint NOT NULL,
    created_at timestamptz DEFAULT now()
);
