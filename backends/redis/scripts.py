"""The Lua scripts that make a room's stream one across nodes (``notes/scale-out.md`` §7).

Each runs atomically in Redis, so no two nodes ever give out one seq. Keys of a room share the
hash tag ``{r:<room>}``: ``meta`` (HASH: ``e`` epoch, ``s`` head seq, ``t`` newest timestamp),
``log`` (STREAM: entry id ``<seq>-0``, field ``m``), ``ids`` (ZSET: ``sender\\0id`` -> seq, the
idempotency keys of what the stream still holds). An entry (and a pub/sub message) is
``seq \\n epoch \\n timestamp \\n body``, body the JSON the node made. ``ip:rooms`` (ZSET, every
score 0: name order) lists every room some node loaded, for retention's sweep.
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

# KEYS meta log ids pres rooms; ARGV recent new_epoch room -> {epoch, head, newest entries
# (newest first), oldest retained seq or false, presence (HGETALL: node\0user, 1, ...)}
LOAD = """
redis.call('ZADD', KEYS[5], 0, ARGV[3])
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
return {e, s, recent, first, redis.call('HGETALL', KEYS[4])}
"""

# Retention: trim what expired (entry ids below ``before``, and their idempotency keys).
# KEYS meta log ids; ARGV before
TRIM = """
redis.call('XTRIM', KEYS[2], 'MINID', ARGV[1] .. '-0')
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[1])
return 0
"""

# Retention: forget a room whose messages have all expired, unless one was published since
# the sweep read it (its head moved); a room someone is in, on any node, keeps its record (a
# later LOAD of a forgotten one starts it afresh under a new epoch).
# KEYS meta log ids pres rooms; ARGV room head -> 1 (forgotten) or 0
FORGET = """
if tonumber(redis.call('HGET', KEYS[1], 's') or -1) ~= tonumber(ARGV[2]) then return 0 end
redis.call('XTRIM', KEYS[2], 'MINID', (tonumber(ARGV[2]) + 1) .. '-0')
redis.call('DEL', KEYS[3])
if redis.call('HLEN', KEYS[4]) > 0 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[5], ARGV[1])
return 1
"""

# The admin API's DeleteHistory: forget the room's messages (``ARGV[1]`` empty) or only one
# sender's; what is left is renumbered from seq 1 under a new epoch, its ids re-keyed, and
# every node following the room is told (``X``), so its members get the notice and resume. A
# room with nothing to remove is left as it is. Reads the whole stream (at most ``--retain``
# entries): an admin call, not a hot path.
# KEYS meta log ids; ARGV user new_epoch channel -> {removed, epoch, head}
DELETE = """
local e = redis.call('HGET', KEYS[1], 'e')
if not e then return {0, '', 0} end
local entries = redis.call('XRANGE', KEYS[2], '-', '+')
local kept = {}
if ARGV[1] ~= '' then
  for _, entry in ipairs(entries) do
    local t, body = string.match(entry[2][2], '^%d+\\n[^\\n]*\\n(%d+)\\n(.*)$')
    if cjson.decode(body)[3] ~= ARGV[1] then kept[#kept + 1] = {t, body} end
  end
end
local removed = #entries - #kept
if removed == 0 then return {0, e, tonumber(redis.call('HGET', KEYS[1], 's'))} end
e = ARGV[2]
redis.call('DEL', KEYS[2], KEYS[3])
for seq, m in ipairs(kept) do
  redis.call('XADD', KEYS[2], seq .. '-0', 'm', seq .. '\\n' .. e .. '\\n' .. m[1] .. '\\n' .. m[2])
  local message = cjson.decode(m[2])
  if message[4] ~= '' then redis.call('ZADD', KEYS[3], seq, message[3] .. '\\0' .. message[4]) end
end
redis.call('HSET', KEYS[1], 'e', e, 's', #kept)
redis.call('PUBLISH', ARGV[3], 'X\\n' .. cjson.encode({e, #kept, ARGV[1]}))
return {removed, e, #kept}
"""

# Presence: a room's ``pres`` HASH holds ``node\0user`` for each user present through a node;
# each node's ``ip:node:<id>:rooms`` SET names the rooms it has presence in, for the reaper.
# KEYS pres node_rooms; ARGV field present(1/0) channel payload room
PRESENCE = """
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], ARGV[1], 1)
  redis.call('SADD', KEYS[2], ARGV[5])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
"""

# Liveness: ``ip:nodes`` ZSET node -> expiry (ms, Redis's clock). A node renews its own, then
# reaps every node past its expiry: each of its users leaves each room (HDEL, and a LEAVE
# published as the node would have), once (ZREM claims it). Keys are derived in the script
# (one Redis, not Cluster). KEYS nodes; ARGV node ttl_ms -> {renewed_as_new, reaped}
HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local new = redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local reaped = 0
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  redis.call('ZREM', KEYS[1], dead)
  local rooms = 'ip:node:' .. dead .. ':rooms'
  local prefix = dead .. '\\0'
  for _, room in ipairs(redis.call('SMEMBERS', rooms)) do
    local pres = 'ip:{r:' .. room .. '}:pres'
    for _, f in ipairs(redis.call('HKEYS', pres)) do
      if string.sub(f, 1, #prefix) == prefix then
        redis.call('HDEL', pres, f)
        local user = string.sub(f, #prefix + 1)
        redis.call('PUBLISH', 'ip:{r:' .. room .. '}:live',
          'P\\n' .. cjson.encode({0, room, user, dead}))
      end
    end
  end
  redis.call('DEL', rooms)
  reaped = reaped + 1
end
return {new, reaped}
"""

# Documents (``notes/scale-out.md`` §7d): a HASH ``doc`` (``text`` and ``revision`` of the
# snapshot, ``head`` the log's last revision), a STREAM ``ops`` (entry id ``<revision>-0``,
# field ``e``: ``revision \n body``, body the JSON the node made) and a ZSET ``opids``
# (``author\0op_id`` -> revision, of the kept revisions). An edit is appended only if it was
# made on the head (compare-and-set: two nodes never make one revision), and a known op id is
# answered with its revision instead (a re-send through another node is not applied twice).
# With a snapshot, what is older than ``keep_from`` is forgotten (as ``SaveEdit`` says).
# KEYS doc ops opids; ARGV expected key body keep_from channel snapshot has_snapshot(1/0)
# -> {'OK', revision} | {'CONFLICT', head} | {'DUP', revision}
COMMIT = """
if ARGV[2] ~= '' then
  local p = redis.call('ZSCORE', KEYS[3], ARGV[2])
  if p then return {'DUP', tonumber(p)} end
end
local head = tonumber(redis.call('HGET', KEYS[1], 'head') or '0')
if tonumber(ARGV[1]) ~= head then return {'CONFLICT', head} end
local rev = head + 1
local entry = rev .. '\\n' .. ARGV[3]
redis.call('XADD', KEYS[2], rev .. '-0', 'e', entry)
redis.call('HSET', KEYS[1], 'head', rev)
if ARGV[2] ~= '' then redis.call('ZADD', KEYS[3], rev, ARGV[2]) end
if ARGV[7] == '1' then
  redis.call('HSET', KEYS[1], 'text', ARGV[6], 'revision', rev)
  local keep_from = tonumber(ARGV[4])
  if keep_from > 1 then
    redis.call('XTRIM', KEYS[2], 'MINID', keep_from .. '-0')
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. keep_from)
  end
end
redis.call('PUBLISH', ARGV[5], entry)
return {'OK', rev}
"""

# Matches (``notes/scale-out.md`` §7f): one owner per match by lease with a fencing token.
# Keys of a match share the hash tag ``{m:<match>}``: ``owner`` (STRING ``node|fence``, with a
# PX expiry: the lease), ``fence`` (the counter every acquisition increments, never deleted, so
# a fence is never given out twice), ``snap`` (HASH: ``data`` the owner's last snapshot, its
# ``fence``, and ``tick`` the last tick published), ``in`` (STREAM of the players' inputs, which
# the owner reads). Every write of an owner names its ``node|fence``; a script that finds
# another value in ``owner`` refuses it: a stale owner (paused past its lease) changes nothing.

# KEYS owner fence; ARGV node ttl_ms -> {1, fence} (held now) or {0, owner, pttl}
ACQUIRE = """
local held = redis.call('GET', KEYS[1])
if held then
  local node, fence = string.match(held, '^(.*)|(%d+)$')
  if node == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {1, tonumber(fence)}
  end
  return {0, held, redis.call('PTTL', KEYS[1])}
end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. fence, 'PX', ARGV[2])
return {1, fence}
"""

# KEYS owner; ARGV node|fence ttl_ms -> 1 (renewed) or 0 (not the holder: the lease is lost)
RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS owner snap in; ARGV node|fence fence data position -> 1 (saved) or 0 (stale: refused).
# The inputs the snapshot holds (up to ``position``) are trimmed from the stream.
SAVE_MATCH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], 'data', ARGV[3], 'fence', ARGV[2])
if ARGV[4] ~= '0-0' then redis.call('XTRIM', KEYS[3], 'MINID', ARGV[4]) end
return 1
"""

# KEYS owner snap; ARGV node|fence tick channel payload -> 1 (published) or 0 (stale: refused)
PUBLISH_STATE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], 'tick', ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
"""

# A match that closed (empty past its grace) is forgotten, unless an input arrived after the
# last one its owner read (someone joined meanwhile: the owner reads on).
# KEYS owner snap in; ARGV node|fence position -> 1 (forgotten) or 0
CLOSE_MATCH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
if last[1] and last[1][1] ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 1
"""

# Which of ARGV (node ids) are alive: not reaped from ``ip:nodes`` (HEARTBEAT reaps a node
# past its expiry, its chat members leave then; a node reaped while alive learns it at its
# next beat and tells its members and players again, so "dead" means the same for both).
# KEYS nodes -> the alive ones
NODES_ALIVE = """
local alive = {}
for _, node in ipairs(ARGV) do
  if redis.call('ZSCORE', KEYS[1], node) then table.insert(alive, node) end
end
return alive
"""
