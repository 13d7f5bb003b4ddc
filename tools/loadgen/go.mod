module github.com/kailash-gateway/kgw/tools/loadgen

go 1.26.8

require (
	github.com/jackc/pgx/v5 v5.12.0
	github.com/kailash-gateway/kgw v0.0.0
	github.com/kailash-gateway/kgw/gen/go v0.0.0
	github.com/mattn/go-sqlite3 v1.14.53
	google.golang.org/grpc v1.85.0
	google.golang.org/protobuf v1.36.12
)

require (
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	go.uber.org/goleak v1.3.0 // indirect
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20261110000943-09e21b237f2c // indirect
)

replace (
	github.com/kailash-gateway/kgw => ../..
	github.com/kailash-gateway/kgw/clients/go => ../../clients/go
	github.com/kailash-gateway/kgw/gen/go => ../../gen/go
)
