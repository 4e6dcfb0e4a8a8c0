#!/usr/bin/env python3
"""Verify one received webhook with the reference Standard Webhooks library.

Reads {"secret", "headers", "body"} as JSON on stdin; exits 0 when the library accepts the
signature, 1 (with the library's message) when it does not. Used by the end-to-end tests.
"""
import json
import sys

from standardwebhooks.webhooks import Webhook

msg = json.load(sys.stdin)
try:
    Webhook(msg["secret"]).verify(msg["body"], msg["headers"])
except Exception as e:  # the library raises WebhookVerificationError
    print(f"refused: {e}")
    sys.exit(1)
print("verified")
