-- wrk script for figure (g3): each connection waits 1 ms between requests, a light and steady
-- load (about 1,000 requests/s per connection), far below what the apps can serve.
function delay()
   return 1
end
