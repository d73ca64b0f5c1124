import { encodeCommand } from '../../resp/encode.js';

/**
 * How far every expiry in the scratch server is pushed into the future (1000 years, in ms),
 * so that no key of the state at T expires while rf reads it. Expiry times stay below 2^53
 * (about 3.3e13 ms), so Lua numbers and JavaScript numbers hold them exactly.
 */
export const FAR_FUTURE_MS = 1000 * 365.25 * 24 * 3_600_000;

/**
 * Sent down the replication link once the scratch server holds the state at T, while it is
 * still a replica of rf. A replica never expires keys itself, and to its master's commands a
 * key whose time has passed is still there (db.c expireIfNeeded: the master client sees every
 * key), while any other client would be told it is gone. The script pushes every expiry
 * FAR_FUTURE_MS later, so once the scratch is detached and rf reads it as an ordinary client,
 * each key is there with its expiry as at T, recovered by subtracting FAR_FUTURE_MS.
 *
 * Only databases with expires are walked (INFO keyspace). An expiry already past FAR_FUTURE_MS
 * is not moved again: SCAN may return a key twice while the table rehashes.
 */
const FREEZE_EXPIRIES = `
local delta = tonumber(ARGV[1])
local info = redis.call('INFO', 'keyspace')
for db, expires in string.gmatch(info, 'db(%d+):keys=%d+,expires=(%d+)') do
  if tonumber(expires) > 0 then
    redis.call('SELECT', db)
    local cursor = '0'
    repeat
      local r = redis.call('SCAN', cursor, 'COUNT', 1000)
      cursor = r[1]
      for _, k in ipairs(r[2]) do
        local t = redis.call('PEXPIRETIME', k)
        if t >= 0 and t < delta then
          redis.call('PEXPIREAT', k, string.format('%.0f', t + delta))
        end
      end
    until cursor == '0'
  end
end
return 0`;

/** The replication-stream bytes that freeze the scratch server's expiries (see above). */
export function freezeExpiriesCommand(): Buffer {
  return encodeCommand(['EVAL', FREEZE_EXPIRIES, '0', String(FAR_FUTURE_MS)]);
}
