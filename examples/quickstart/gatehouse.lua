-- Quickstart: one gateway in front of the demo upstream that scripts/quickstart starts.
return {
  listen  = { "127.0.0.1:8080" },
  workers = "auto",
  access_log = "stderr",
  limits = {
    max_body = 10 * 1024 * 1024,  -- 10 MiB; larger bodies get 413
    header_timeout = 10,
    idle_timeout = 60,
  },
  upstreams = {
    demo = { targets = { "127.0.0.1:9000" }, keepalive = 32 },
  },
  routes = "../../routes/",
}
