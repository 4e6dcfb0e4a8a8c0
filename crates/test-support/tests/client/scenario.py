"""A customer's day with a client generated from docs/openapi.json by openapi-python-client.

Run by tests/it/client.rs with the generated package on PYTHONPATH:
    scenario.py REGISTRY_URL PUBLISHER_URL ADMIN_TOKEN PRODUCER_TOKEN RECEIVER_URL
It exits non-zero (an assertion) at the first answer a customer would not expect.
"""

import sys
import time

import httpx
from hookwire_client import AuthenticatedClient
from hookwire_client.api.admin import create_api_key, create_tenant
from hookwire_client.api.deliveries import list_ as list_deliveries
from hookwire_client.api.deliveries import retrieve as retrieve_delivery
from hookwire_client.api.deliveries import retry as retry_delivery
from hookwire_client.api.webhooks import create as create_webhook
from hookwire_client.api.webhooks import rotate_secret
from hookwire_client.models import ApiKeyIn, TenantIn, WebhookIn

registry, publisher, admin_token, producer_token, receiver = sys.argv[1:6]

admin = AuthenticatedClient(base_url=registry, token=admin_token)
tenant = create_tenant.sync(client=admin, body=TenantIn(name="generated-client"))
assert tenant.name == "generated-client", tenant
key = create_api_key.sync(client=admin, body=ApiKeyIn(tenant_id=tenant.id))
assert key.key and key.key.startswith("hwk_"), key

customer = AuthenticatedClient(base_url=registry, token=key.key)
webhook = create_webhook.sync(client=customer, body=WebhookIn(url=receiver, events=["person.*"]))
assert webhook.secret.startswith("whsec_"), webhook
print("webhook", webhook.id)

# Ingest is the producers' side, not part of the management API's document.
accepted = httpx.post(
    f"{publisher}/v1/events",
    headers={"Authorization": f"Bearer {producer_token}"},
    json={"type": "person.created", "tenant_id": str(tenant.id), "data": {"name": "Ada"}},
).json()
assert accepted["matched"] == 1, accepted
print("event", accepted["event_id"])


def delivered():
    page = list_deliveries.sync(client=customer, webhook_id=webhook.id)
    return page.results[0] if page.count == 1 and page.results[0].status == "success" else None


deadline = time.monotonic() + 20
while (delivery := delivered()) is None:
    assert time.monotonic() < deadline, "the delivery did not succeed within 20 s"
    time.sleep(0.1)
assert str(delivery.event_id) == accepted["event_id"], delivery

detail = retrieve_delivery.sync(client=customer, id=str(delivery.id))
assert detail.attempt_count == 1 and len(detail.attempts) == 1, detail
assert detail.attempts[0].response_status == 200, detail
assert detail.payload["data"] == {"name": "Ada"}, detail.payload
print("delivery", delivery.id, detail.status)

retried = retry_delivery.sync(client=customer, id=str(delivery.id))
assert str(retried.delivery_id) == str(delivery.id), retried

rotated = rotate_secret.sync(client=customer, id=str(webhook.id))
assert rotated.secret.startswith("whsec_") and rotated.secret != webhook.secret, rotated
print("rotated")
