package server

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
	"github.com/kailash-gateway/kgw/resources"
	"github.com/kailash-gateway/kgw/secrets"
)

// Limits on execution requests.
const (
	maxRequestResources = 64
	maxIdempotencyKey   = 256
	maxExecutionIDLen   = 128
)

// namedResourceRE is the pattern of a named (server-side) resource.
var namedResourceRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// validateNamedResourceName checks the name of a named resource in field.
func validateNamedResourceName(v *validationErrors, field, name string) {
	switch {
	case name == "":
		v.add(field, "required")
	case !namedResourceRE.MatchString(name):
		v.add(field, "%q is not a valid resource name: want [a-z0-9][a-z0-9_-]{0,62}", clip(name))
	}
}

// validateRequestResources checks the resources map of an execution request.
func validateRequestResources(v *validationErrors, res map[string]*kgwv1.ResourceSpec, inlineDisabled bool) {
	if len(res) > maxRequestResources {
		v.add("resources", "%d resources, at most %d allowed", len(res), maxRequestResources)
		return
	}
	names := make([]string, 0, len(res))
	for name := range res {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		field := fmt.Sprintf("resources[%q]", clip(name))
		if !resourceNameRE.MatchString(name) {
			v.add(field, "%q is not a valid resource name: want [a-z][a-z0-9_]{0,62}", clip(name))
			continue
		}
		validateSpec(v, field, res[name], false, inlineDisabled)
	}
}

// validateSpec checks a resource spec in field without connecting anywhere:
// either ref alone, or a known type with a config that parses. A spec of a
// named resource (named) may not use ref. With inlineDisabled, only ref is
// accepted.
func validateSpec(v *validationErrors, field string, s *kgwv1.ResourceSpec, named, inlineDisabled bool) {
	if s == nil {
		v.add(field, "required")
		return
	}
	if s.GetRef() != "" {
		if named {
			v.add(field+".ref", "a named resource cannot refer to another one: give type, config and credentials_ref")
			return
		}
		validateNamedResourceName(v, field+".ref", s.GetRef())
		if s.GetType() != "" || len(s.GetConfig().GetFields()) > 0 || s.GetCredentialsRef() != "" || s.GetCredentialsKey() != "" {
			v.add(field+".ref", "give ref or type/config/credentials_ref, not both")
		}
		return
	}
	if !checkStructDepth(v, field+".config", s.GetConfig()) {
		return
	}
	if inlineDisabled && !named {
		v.add(field, `inline resource specs are disabled on this gateway; use a named resource: {"ref": "name"}`)
		return
	}
	cfg := structToMap(s.GetConfig())
	// Mistakes no retry can fix come first, each with its fix; a credential
	// key is then left out of the parse so it is reported once.
	for _, p := range resources.CheckCredentials(s.GetType(), cfg, s.GetCredentialsRef()) {
		v.add(field+".config."+p.Key, "%s", p.Message)
		if p.Key != "base_url" {
			delete(cfg, p.Key)
		}
	}
	switch _, err := resources.ParseConfig(s.GetType(), cfg); {
	case err == nil:
	case s.GetType() == "":
		v.add(field+".type", "required: database, cache or http_client (or give ref)")
	case errors.Is(err, resources.ErrUnknownType):
		v.add(field+".type", "%q is not a resource type: want database, cache or http_client", clip(s.GetType()))
	default:
		// Config parse errors name keys and describe values; configs never
		// hold credentials (those come from credentials_ref).
		v.add(field+".config", "%s", strings.TrimSpace(err.Error()))
	}
	switch ref := s.GetCredentialsRef(); {
	case ref == "" && s.GetCredentialsKey() != "":
		v.add(field+".credentials_key", "needs credentials_ref")
	case ref != "" && !secrets.ValidName(ref):
		v.add(field+".credentials_ref", "%q is not a valid secret name", clip(ref))
	}
}
