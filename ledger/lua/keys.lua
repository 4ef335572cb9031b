-- keysScript returns the Lua-built key names, for TestKeysMatchLua.
--
--  KEYS[1] any key of the ledger (routing only)
--  ARGV[7] id  ARGV[8] account  ARGV[9] state  ARGV[10] message id  ARGV[11] inbound dedupe key
--
-- Reply: {key name...}, in the order of TestKeysMatchLua.

local id, acct, st = ARGV[7], ARGV[8], ARGV[9]
return {k_send(id), k_history(id), k_seq(), k_all(), k_state(st), k_acct(acct, st), k_acct_all(acct),
  k_deadlines(), k_outbox(), k_watch(), k_leases(), k_finished(), k_held_global(), k_held_acct(acct), k_paused_global(),
  k_paused_accounts(), k_optout(), k_audit(), k_msg(ARGV[10]), k_held_accounts(), k_inbound_seen(ARGV[11])}
