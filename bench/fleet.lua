-- wrk script of figure (f): every request a distinct batch of OS-monitor events.
--
--   wrk -t2 -c512 -d14s -s bench/fleet.lua http://hq:port -- config.lua
--
-- config.lua is written by bench/fleetevents.py (`Fleet.lua_config`): the mode ("hq": PUT
-- /events with the space's token; "bulk": POST /_bulk of the same documents with their _ids),
-- events per request, the event formats and value ranges, the spaces and a nonce that makes
-- every id of this run new. The events are the ones `Fleet.batches` builds in Python.
--
-- Tally: a request is acknowledged when HQ answers 202, or `_bulk` answers 200 with
-- "errors":false. Acknowledged events are counted per 100 ms of CLOCK_MONOTONIC (the clock of
-- Python's time.monotonic), so the harness can take a steady window out of one run; done()
-- prints one line `FLEET-JSON {...}` with the totals of all threads.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } fleet_timespec;
int clock_gettime(int clock, fleet_timespec *tp);
]]
local ts = ffi.new("fleet_timespec")
local function clock(id)
  ffi.C.clock_gettime(id, ts)
  return tonumber(ts.tv_sec), tonumber(ts.tv_nsec)
end
local REALTIME, MONOTONIC = 0, 1

local threads = {}

function setup(thread)
  thread:set("thread_no", #threads)
  table.insert(threads, thread)
end

function init(args)
  cfg = dofile(args[1])
  generator = cfg.generator_base + thread_no
  ok, refused, built_events, built_bytes = 0, 0, 0, 0
  failure = ""
  per_request = cfg.per_request
  -- Closed buckets as text "decisecond:events,...", the open one in two numbers: wrk's
  -- thread:get copies strings and numbers soundly, but not tables.
  closed, open_bucket, open_events = "", -1, 0
  batch_no = 0
  second, second_text, month = -1, "", ""
  for i, space in ipairs(cfg.spaces) do
    space.index_no = i - 1
    space.doc_end = ',"space":"' .. space.name .. '"}\n'
    space.headers = { ["Content-Type"] = "application/json", ["logspace.space-token"] = space.token }
  end
  bulk_headers = { ["Content-Type"] = "application/x-ndjson" }
  path = cfg.mode == "hq" and "/events" or "/_bulk?filter_path=errors"
  method = cfg.mode == "hq" and "PUT" or "POST"
  -- ids: cfg.id_format is "%s-%04x-4%03x-8%03x-%012x" (nonce, generator, collector, space,
  -- batch); the first three parts are fixed per collector.
  id_starts = {}
  for k = 1, #cfg.templates do
    id_starts[k] = string.format("%s-%04x-4%03x", cfg.nonce, generator, k)
  end
end

local function timestamp()
  local sec, nsec = clock(REALTIME)
  if sec ~= second then
    second = sec
    second_text = os.date("!%Y-%m-%dT%H:%M:%S", sec)
    month = os.date("!%Y.%m", sec)
  end
  return string.format("%s.%03dZ", second_text, math.floor(nsec / 1e6))
end

-- The same arithmetic as fleetevents._value; each value is drawn from a pool of POOL values
-- formatted once per thread, since string.format is what costs in LuaJIT.
local POOL = 256
local function value(spec)
  if spec[1] == "choice" then
    local choices = spec[2]
    return choices[math.floor(math.random() * #choices) + 1]
  end
  local low, high = spec[2], spec[3]
  if spec[1] == "int" then
    return low + math.floor(math.random() * (high - low + 1))
  end
  return low + math.random() * (high - low)
end

local function prepare()
  -- Each template's format split at its placeholders: id, system, timestamp, then values.
  for _, template in ipairs(cfg.templates) do
    local pieces, codes = {}, {}
    local rest = template.format
    while true do
      local at, stop, code = rest:find("(%%[.%d]*[sdf])")
      if not at then break end
      pieces[#pieces + 1] = rest:sub(1, at - 1)
      codes[#codes + 1] = code
      rest = rest:sub(stop + 1)
    end
    pieces[#pieces + 1] = rest
    template.pieces = pieces
    template.pools = {}
    for i, spec in ipairs(template.specs) do
      local pool = {}
      for j = 1, POOL do pool[j] = string.format(codes[i + 3], value(spec)) end
      template.pools[i] = pool
    end
  end
end

function request()
  if cfg.templates[1].pieces == nil then prepare() end
  local parts, n, space = {}, 0, nil
  local hq = cfg.mode == "hq"
  while n < cfg.per_request do
    batch_no = batch_no + 1
    -- HQ: one space (one token) per request; _bulk: the same space per batch as HQ would see.
    if not hq or space == nil then
      space = cfg.spaces[(batch_no + generator) % #cfg.spaces + 1]
    end
    local system = string.format(cfg.system_format, (generator * 7919 + batch_no) % cfg.hosts)
    local stamp = timestamp()
    local index = cfg.prefix .. "-" .. space.name .. "-" .. month
    local id_end = string.format("-8%03x-%012x", space.index_no, batch_no)
    for k, template in ipairs(cfg.templates) do
      if n >= cfg.per_request then break end
      n = n + 1
      local id = id_starts[k] .. id_end
      local p = template.pieces
      local pools = template.pools
      local event = { p[1], id, p[2], system, p[3], stamp }
      for i = 1, #pools do
        local pool = pools[i]
        event[#event + 1] = p[i + 3]
        event[#event + 1] = pool[math.floor(math.random() * POOL) + 1]
      end
      event[#event + 1] = p[#p]
      event = table.concat(event)
      built_bytes = built_bytes + #event + 1
      if hq then
        parts[n] = event .. "}"
      else
        parts[n] = '{"create":{"_index":"' .. index .. '","_id":"' .. id .. '"}}\n' .. event .. space.doc_end
      end
    end
  end
  built_events = built_events + n
  if hq then
    return wrk.format(method, path, space.headers, "[" .. table.concat(parts, ",") .. "]")
  end
  return wrk.format(method, path, bulk_headers, table.concat(parts))
end

function response(status, headers, body)
  local good
  if cfg.mode == "hq" then
    good = status == 202
  else
    good = status == 200 and body ~= nil and body:find('"errors":false', 1, true) ~= nil
  end
  if good then
    local sec, nsec = clock(MONOTONIC)
    local b = sec * 10 + math.floor(nsec / 1e8)
    if b ~= open_bucket then
      if open_events > 0 then closed = closed .. open_bucket .. ":" .. open_events .. "," end
      open_bucket, open_events = b, 0
    end
    open_events = open_events + per_request
    ok = ok + 1
  else
    refused = refused + 1
    if failure == "" then failure = tostring(status) .. " " .. string.sub(body or "", 1, 300) end
  end
end

local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

function done(summary, latency, requests)
  local totals = { ok = 0, refused = 0, built_events = 0, built_bytes = 0 }
  local all, failures, per_request = {}, {}, 0
  for _, thread in ipairs(threads) do
    per_request = thread:get("per_request")
    for key, _ in pairs(totals) do totals[key] = totals[key] + thread:get(key) end
    local f = thread:get("failure")
    if f ~= "" then failures[#failures + 1] = f end
    local text = thread:get("closed") .. thread:get("open_bucket") .. ":" .. thread:get("open_events") .. ","
    for b, events in text:gmatch("(%d+):(%d+),") do
      b = tonumber(b)
      all[b] = (all[b] or 0) + tonumber(events)
    end
  end
  local cells = {}
  for b, events in pairs(all) do
    if events > 0 then cells[#cells + 1] = string.format('"%d":%d', b, events) end
  end
  local e = summary.errors
  io.write("FLEET-JSON {")
  io.write(string.format('"ok":%d,"refused":%d,"per_request":%d,', totals.ok, totals.refused, per_request))
  io.write(string.format('"built_events":%d,"built_bytes":%d,', totals.built_events, totals.built_bytes))
  io.write(string.format('"requests":%d,"duration_us":%d,"bytes_read":%d,', summary.requests, summary.duration, summary.bytes))
  io.write(string.format('"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},',
    e.connect, e.read, e.write, e.status, e.timeout))
  io.write(string.format('"latency_us":{"p50":%d,"p99":%d,"max":%d},',
    latency:percentile(50), latency:percentile(99), latency.max))
  io.write('"failures":[' .. table.concat((function()
    local q = {}
    for i, f in ipairs(failures) do q[i] = quote(f) end
    return q
  end)(), ",") .. '],')
  io.write('"buckets":{' .. table.concat(cells, ",") .. "}}\n")
end
