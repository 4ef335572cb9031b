// Package deploy holds no code: it is the home of the checks of sendworker's packaging files
// (../Dockerfile, ../docker-compose.yml, kubernetes/ and redis/), in deploy_test.go.
//
// There is no container engine or cluster where the tests run, so they check what can run
// here: the files parse; every SENDWORKER_* variable they set is one the configuration knows,
// and their environment loads through config.Load; probes, ports and grace periods agree with
// what the daemon serves and how long it takes to stop; the real daemon starts with the
// compose and Kubernetes environments (Redis and the provider pointed at local stand-ins) and
// answers its probes (on a local master, replica and Sentinel for the Kubernetes Sentinel URL);
// the Redis Sentinel and Cluster URLs parse in the intended mode and agree with the Redis chart's
// values; the kustomize base, the Ingress and the NetworkPolicy fit the Deployment and Service;
// the compose seed enqueues the dev demo's sends; the commands of the READMEs name files that
// exist from the repository root; and the Dockerfile's build step, run as a command, produces
// static binaries.
//
// This package must never be imported, and never hold anything the daemon needs.
package deploy
