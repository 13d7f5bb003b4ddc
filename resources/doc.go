// Package resources lends database, cache and HTTP capacity to running
// nodes and takes it back when their attempt ends.
//
// A Broker turns a store.ResourceSpec into a live Starlark handle: it
// resolves a named resource (ref) or takes the inline spec, resolves the
// spec's credentials_ref through the secret store, merges the credentials
// into the config by type, checks that the secret may be sent to the
// resource's hosts, and finds or creates the shared pool keyed by (type,
// canonical config, secret name and version). Pools are shared by every
// execution; a new secret version gets a new pool while the old one drains
// and closes; idle pools close after Config.IdleTimeout; every connection
// goes through a dialer that applies the address guard (resources/netguard)
// and a per-target connection cap.
//
// Each node attempt opens handles through its own Session, and the
// Session's Close returns every connection the attempt checked out,
// whatever way the attempt ended.
//
// The handle types live in resources/postgres ("database"),
// resources/redis ("cache") and resources/httppool ("http_client").
package resources
