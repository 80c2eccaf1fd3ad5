"""The trainer's domain: the search engine (no gRPC, no generated protobuf modules)."""
