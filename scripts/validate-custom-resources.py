"""Validates the custom resources of a rendered manifest (`kubectl kustomize` output) against the
schemas in deploy/k8s/schemas/, and writes the other objects to a file for kubernetes-validate,
which knows only Kubernetes' own kinds.

Usage: validate-custom-resources.py RENDERED.yaml REST.yaml
A schema is found by group, kind and version: `rabbitmq.com/v1beta1` `RabbitmqCluster` reads
`rabbitmq.com_rabbitmqcluster_v1beta1.json`. A custom resource without a schema fails."""

import json
import pathlib
import sys

import jsonschema
import yaml

SCHEMAS = pathlib.Path(__file__).resolve().parent.parent / "deploy" / "k8s" / "schemas"


def schema_for(api_version, kind):
    group, _, version = api_version.rpartition("/")
    if "." not in group:
        return None  # a Kubernetes group (apps, autoscaling, policy) or the core one
    path = SCHEMAS / f"{group}_{kind.lower()}_{version}.json"
    if not path.exists():
        sys.exit(f"{kind} ({api_version}): no schema at {path}")
    return json.loads(path.read_text())


def main(rendered, rest):
    docs = [d for d in yaml.safe_load_all(pathlib.Path(rendered).read_text()) if d]
    others, failures, checked = [], [], 0
    for doc in docs:
        schema = schema_for(doc.get("apiVersion", ""), doc.get("kind", ""))
        if schema is None:
            others.append(doc)
            continue
        checked += 1
        name = f"{doc['kind']}/{doc.get('metadata', {}).get('name')}"
        for error in jsonschema.Draft202012Validator(schema).iter_errors(doc):
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            failures.append(f"{name}: {where}: {error.message}")
    pathlib.Path(rest).write_text(yaml.safe_dump_all(others, sort_keys=False))
    for f in failures:
        print(f, file=sys.stderr)
    if failures:
        sys.exit(1)
    print(f"[deploy-check] {checked} custom resources valid")


if __name__ == "__main__":
    main(*sys.argv[1:])
