"""openstacksdk drives octavia-rs through a real Keystone's catalog.

Usage: sdk_tree.py ROLE   (environment: OS_AUTH_URL, OS_USER_ID, OS_PASSWORD, OS_PROJECT_ID,
OS_REGION_NAME, SUBNET_ID; for ROLE=reader also LB_ID)

  member: create a load balancer with a listener, pool, member and health monitor, wait for
          each to be ACTIVE, print the load balancer id as JSON, leave the tree in place;
  reader: read the tree LB_ID names, then try to create a listener (must be refused: 403);
  delete: cascade-delete LB_ID and wait until it is gone;
  outsider: read LB_ID (must be refused: 403 or 404).
"""

import json
import os
import sys

import openstack
from openstack import exceptions


def connect():
    return openstack.connect(
        auth_url=os.environ["OS_AUTH_URL"],
        user_id=os.environ["OS_USER_ID"],
        password=os.environ["OS_PASSWORD"],
        project_id=os.environ["OS_PROJECT_ID"],
        region_name=os.environ["OS_REGION_NAME"],
        interface="public",
    )


def wait_lb(lb_api, lb_id):
    lb_api.wait_for_load_balancer(lb_id, status="ACTIVE", failures=["ERROR"], interval=0.2, wait=60)


def member(conn):
    lb_api = conn.load_balancer
    lb = lb_api.create_load_balancer(name="sdk-lb", vip_subnet_id=os.environ["SUBNET_ID"])
    wait_lb(lb_api, lb.id)
    listener = lb_api.create_listener(name="sdk-l", protocol="HTTP", protocol_port=80, load_balancer_id=lb.id)
    wait_lb(lb_api, lb.id)
    pool = lb_api.create_pool(name="sdk-p", protocol="HTTP", lb_algorithm="ROUND_ROBIN", listener_id=listener.id)
    wait_lb(lb_api, lb.id)
    lb_api.create_member(pool, name="sdk-m", address="192.0.2.10", protocol_port=8080)
    wait_lb(lb_api, lb.id)
    lb_api.create_health_monitor(pool_id=pool.id, type="HTTP", delay=5, timeout=3, max_retries=2)
    wait_lb(lb_api, lb.id)
    for obj in [lb_api.get_listener(listener.id), lb_api.get_pool(pool.id)]:
        assert obj.provisioning_status == "ACTIVE", obj
    assert [m.name for m in lb_api.members(pool)] == ["sdk-m"]
    print(json.dumps({"load_balancer": lb.id, "project": lb.project_id}))


def reader(conn):
    lb_api = conn.load_balancer
    lb = lb_api.get_load_balancer(os.environ["LB_ID"])
    assert lb.provisioning_status == "ACTIVE", lb
    names = sorted(l.name for l in lb_api.listeners())
    assert names == ["sdk-l"], names
    try:
        lb_api.create_listener(name="nope", protocol="TCP", protocol_port=81, load_balancer_id=lb.id)
    except exceptions.ForbiddenException:
        print(json.dumps({"refused": 403}))
        return
    raise SystemExit("a reader created a listener")


def delete(conn):
    lb_api = conn.load_balancer
    # Fetched before the delete: the job may remove it before a fetch after the call.
    lb = lb_api.get_load_balancer(os.environ["LB_ID"])
    lb_api.delete_load_balancer(lb, cascade=True)
    lb_api.wait_for_delete(lb, interval=0.2, wait=60)
    print(json.dumps({"deleted": os.environ["LB_ID"]}))


def outsider(conn):
    try:
        conn.load_balancer.get_load_balancer(os.environ["LB_ID"])
    except (exceptions.ForbiddenException, exceptions.NotFoundException) as e:
        print(json.dumps({"refused": e.status_code}))
        return
    raise SystemExit("another project's user read the load balancer")


if __name__ == "__main__":
    {"member": member, "reader": reader, "delete": delete, "outsider": outsider}[sys.argv[1]](connect())
