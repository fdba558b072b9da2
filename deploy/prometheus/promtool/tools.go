//go:build tools

// Package promtool pins Prometheus's promtool (3.7.3) for scripts/check-deploy.sh, built with
// every service discovery mechanism, Kubernetes included (Debian's promtool is built without it):
//
//	go build -o promtool github.com/prometheus/prometheus/cmd/promtool
package promtool

import _ "github.com/prometheus/prometheus/cmd/promtool"
