module github.com/kailash-gateway/kgw/clients/go

go 1.23

require (
	github.com/google/go-cmp v0.6.0
	github.com/kailash-gateway/kgw/gen/go v0.0.0
	go.uber.org/goleak v1.3.0
	google.golang.org/genproto/googleapis/rpc v0.0.0-20240318140521-94a12d6c2237
	google.golang.org/grpc v1.64.0
	google.golang.org/protobuf v1.33.0
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/kr/text v0.2.0 // indirect
	golang.org/x/net v0.22.0 // indirect
	golang.org/x/sys v0.18.0 // indirect
	golang.org/x/text v0.14.0 // indirect
)

// Development builds the generated code in this repository (gen/go); see
// docs/clients.md for the published versions.
replace github.com/kailash-gateway/kgw/gen/go => ../../gen/go
