"""The Lua scripts that make a room's stream one across nodes (``notes/scale-out.md`` §7).

Each runs atomically in Redis, so no two nodes ever give out one seq. Keys of a room share the
hash tag ``{r:<room>}``: ``meta`` (HASH: ``e`` epoch, ``s`` head seq, ``t`` newest timestamp),
``log`` (STREAM: entry id ``<seq>-0``, field ``m``), ``ids`` (ZSET: ``sender\\0id`` -> seq, the
idempotency keys of what the stream still holds). An entry (and a pub/sub message) is
``seq \\n epoch \\n timestamp \\n body``, body the JSON the node made.
"""

from __future__ import annotations

# A missing meta (a room never seen, or a Redis that lost it) starts the room under a new epoch
# and forgets whatever log or ids were left; so does a head below what the posting node has
# seen under the same epoch (a Redis that came back without its last writes: ``everysec``).
_START = """
local e = redis.call('HGET', KEYS[1], 'e')
if (not e) or (e == ARGV[5] and tonumber(redis.call('HGET', KEYS[1], 's')) < tonumber(ARGV[6]))
then
  e = ARGV[4]
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('HSET', KEYS[1], 'e', e, 's', 0, 't', 0)
end
"""

# KEYS meta log ids; ARGV key body window new_epoch seen_epoch seen stamp channel
# -> {'OK', entry} or {'DUP', entry}
PUBLISH = (
    _START
    + """
if ARGV[1] ~= '' then
  local p = redis.call('ZSCORE', KEYS[3], ARGV[1])
  if p then
    local found = redis.call('XRANGE', KEYS[2], p .. '-0', p .. '-0')
    if found[1] then return {'DUP', found[1][2][2]} end
  end
end
local seq = redis.call('HINCRBY', KEYS[1], 's', 1)
local t = math.max(tonumber(redis.call('HGET', KEYS[1], 't')), tonumber(ARGV[7]))
redis.call('HSET', KEYS[1], 't', t)
local entry = seq .. '\\n' .. e .. '\\n' .. t .. '\\n' .. ARGV[2]
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], seq .. '-0', 'm', entry)
if ARGV[1] ~= '' then
  redis.call('ZADD', KEYS[3], seq, ARGV[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', seq - tonumber(ARGV[3]))
end
redis.call('PUBLISH', ARGV[8], entry)
return {'OK', entry}
"""
)

# KEYS meta log ids; ARGV recent new_epoch -> {epoch, head, newest entries (newest first),
# oldest retained seq or false}
LOAD = """
local e = redis.call('HGET', KEYS[1], 'e')
if not e then
  e = ARGV[2]
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('HSET', KEYS[1], 'e', e, 's', 0, 't', 0)
end
local s = redis.call('HGET', KEYS[1], 's')
local recent = {}
if tonumber(ARGV[1]) > 0 then
  recent = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[1])
end
local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local first = false
if oldest[1] then first = oldest[1][1] end
return {e, s, recent, first}
"""
