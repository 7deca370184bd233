-- Quickstart: one gateway in front of the demo upstream that scripts/quickstart starts.
return {
  listen  = { "127.0.0.1:8080" },
  workers = "auto",
  access_log = "stderr",
  -- Admin API on loopback: /health, /ready, /metrics, /routes, POST /reload.
  admin   = "127.0.0.1:9901",
  limits = {
    max_body = 10 * 1024 * 1024,  -- 10 MiB; larger bodies get 413
    header_timeout = 10,
    idle_timeout = 60,
  },
  issuers = {
    -- Tokens minted by scripts/mint-token with the development key. For a
    -- Keycloak realm, see README ("Pointing an issuer at Keycloak").
    demo = {
      issuer     = "https://gatehouse.example/realms/dev",
      audience   = "orders-api",
      algorithms = { "RS256" },
      clock_skew = 30,
      required_claims = { "sub" },
      pem_file   = "keys/dev-rs256.pub.pem",
    },
  },
  upstreams = {
    demo = { targets = { "127.0.0.1:9000" }, keepalive = 32 },
  },
  routes = "../../routes/",
}
