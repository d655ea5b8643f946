"""The SP-API simulator: a seeded world of orders (`generator`, `world`), its ground truth (`truth`),
Amazon's shapes (`render`) and the HTTP server (`server`, `cancelguard simulator`)."""
