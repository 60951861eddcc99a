-- wrk script of benchmarks/load.py: one scenario of the todo service's load test.
--
--   wrk -t2 -c32 -d10s -s scenario.lua http://HOST:PORT/ -- \
--       SCENARIO TASKS_PATH TOKEN IDS [PAGE_SIZE] [DEEP_PAGE] [ETAG] [TAG] [CURSOR]
--
-- SCENARIO    list_first | list_deep | get_one | create | toggle | mixed, or of contract
--             1.1: list_revalidate | list_tag | tags | changes_pull
-- TASKS_PATH  the user's task collection, /api/<user id>/tasks
-- TOKEN       an access token of that user
-- IDS         comma-separated task ids that get_one and toggle pick from at random
-- ETAG, TAG, CURSOR  the first page's ETag (list_revalidate), a tag (list_tag, URL-encoded),
--             a change-feed cursor (changes_pull, URL-encoded); "-" where unused
-- Prints one line, LOAD_JSON {...}: counts and latency percentiles in microseconds.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("thread_no", #threads)
end

non2xx, status_429 = 0, 0  -- globals: done() reads them from every thread
local scenario, path, ids, page_size, deep_page, json_headers, static
local etag, tag, cursor
local create_body = '{"title": "load.py created", "description": "benchmarks/load.py"}'

local function make(kind)
   if kind == "list_first" then
      return wrk.format("GET", path .. "?page_size=" .. page_size)
   elseif kind == "list_deep" then
      return wrk.format("GET", path .. "?page_size=" .. page_size .. "&page=" .. deep_page)
   elseif kind == "get_one" then
      return wrk.format("GET", path .. "/" .. ids[math.random(#ids)])
   elseif kind == "toggle" then
      return wrk.format("PATCH", path .. "/" .. ids[math.random(#ids)] .. "/complete")
   elseif kind == "create" then
      return wrk.format("POST", path, json_headers, create_body)
   elseif kind == "list_revalidate" then
      return wrk.format("GET", path .. "?page_size=" .. page_size, {
         ["Authorization"] = wrk.headers["Authorization"], ["Accept"] = "application/json",
         ["If-None-Match"] = etag})
   elseif kind == "list_tag" then
      return wrk.format("GET", path .. "?page_size=" .. page_size .. "&tag=" .. tag)
   elseif kind == "tags" then
      return wrk.format("GET", (string.gsub(path, "/tasks$", "/tags")))
   elseif kind == "changes_pull" then
      return wrk.format("GET", path .. "/changes?since=" .. cursor)
   end
   error("unknown scenario " .. tostring(kind))
end

function init(args)
   scenario, path = args[1], args[2]
   ids = {}
   for id in string.gmatch(args[4] or "", "[^,]+") do
      table.insert(ids, id)
   end
   page_size, deep_page = args[5] or "50", args[6] or "1"
   etag, tag, cursor = args[7] or "-", args[8] or "-", args[9] or "-"
   -- wrk.format uses the headers it is given instead of wrk.headers, not in addition.
   wrk.headers["Authorization"] = "Bearer " .. args[3]
   wrk.headers["Accept"] = "application/json"
   json_headers = {["Authorization"] = wrk.headers["Authorization"],
                   ["Accept"] = "application/json", ["Content-Type"] = "application/json"}
   math.randomseed(1000 + (thread_no or 1))  -- the same sequence on every run
   if scenario ~= "mixed" and scenario ~= "get_one" and scenario ~= "toggle" then
      static = make(scenario)
   end
end

function request()
   if static then
      return static
   elseif scenario ~= "mixed" then
      return make(scenario)
   end
   local r = math.random(100)  -- 50 % first page, 25 % get, 15 % toggle, 10 % create
   return make(r <= 50 and "list_first" or r <= 75 and "get_one" or r <= 90 and "toggle" or "create")
end

function response(status, headers, body)
   local good = status >= 200 and status <= 299
   if scenario == "list_revalidate" then
      good = status == 304
   end
   if not good then
      non2xx = non2xx + 1
      if status == 429 then
         status_429 = status_429 + 1
      end
   end
end

function done(summary, latency, requests)
   local non2xx_all, too_many = 0, 0
   for _, thread in ipairs(threads) do
      non2xx_all = non2xx_all + (thread:get("non2xx") or 0)
      too_many = too_many + (thread:get("status_429") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      'LOAD_JSON {"requests":%d,"duration_us":%d,"non2xx":%d,"status_429":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d}}\n',
      summary.requests, summary.duration, non2xx_all, too_many,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
