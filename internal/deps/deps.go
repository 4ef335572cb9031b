// Package deps pins module dependencies that the packages do not import yet, so that
// go mod tidy keeps them while the tree is being built. It is removed once every
// dependency has an importer.
package deps

import (
	_ "github.com/alicebob/miniredis/v2"
	_ "github.com/hibiken/asynq"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/redis/go-redis/v9"
	_ "go.uber.org/goleak"
	_ "go.uber.org/zap"
	_ "go.yaml.in/yaml/v3"
	_ "golang.org/x/oauth2"
	_ "golang.org/x/oauth2/clientcredentials"
	_ "golang.org/x/time/rate"
)
