#!/usr/bin/env python3
"""The PetTracker demo's data side: create the tables, write pets, check the replica.

    pets.py setup         --endpoint URL   create PetTracker (no stream yet) and PetReplica
    pets.py existing      --endpoint URL   write pets 0-23, then enable the stream (NEW_AND_OLD_IMAGES)
                                           and write pets 24-47: the items a snapshot must copy
    pets.py live          --endpoint URL   while eddy runs: pets 48-71, updates and deletes (also of
                                           pets written before the stream existed)
    pets.py verify        --endpoint URL   wait until PetReplica holds exactly PetTracker's dogs

Uses boto3 (installed with moto[server]) against a DynamoDB-compatible endpoint on loopback.
"""
import argparse
import sys
import time

import boto3

SPECIES = ["dog", "cat", "rabbit"]


def client(endpoint):
    return boto3.client(
        "dynamodb", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="demo", aws_secret_access_key="demo",
    )


def setup(db):
    for name in ("PetTracker", "PetReplica"):
        db.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}, {"AttributeName": "SK", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    print("created tables PetTracker (no stream yet) and PetReplica")


def key(i):
    return {"PK": {"S": f"OWNER#{i % 7}"}, "SK": {"S": f"PET#{i:03d}"}}


def pet(i):
    species = SPECIES[i % 3]
    return {
        "PK": {"S": f"OWNER#{i % 7}"},
        "SK": {"S": f"PET#{i:03d}"},
        "type": {"S": "PET"},
        "name": {"S": ["Rex", "Mia", "Hoppy", "Bello", "Luna", "Thumper"][i % 6] + f" {i}"},
        "species": {"S": species},
        # 38 significant digits: more than a double or a 64-bit integer holds.
        "chip": {"N": "1234567890123456789012345678901234567" + str(i % 10)},
        "weight_kg": {"N": f"{3 + i % 20}.{i % 10}"},
        "photo": {"B": bytes([i % 256, 0, 255, 16])},
        "tags": {"SS": ["friendly", f"tag{i % 4}"]},
        "vaccinations": {"L": [
            {"M": {"name": {"S": "rabies"}, "year": {"N": str(2020 + i % 5)}}},
            {"M": {"name": {"S": "distemper"}, "boosters": {"NS": ["1", "2"]}}},
        ]},
        "owner": {"M": {"address": {"M": {"city": {"S": "Berlin"}, "zip": {"S": "10115"}}}, "vip": {"BOOL": i % 5 == 0}}},
        "notes": {"NULL": True},
        "checksums": {"BS": [bytes([i % 256]), bytes([1, 2, 3])]},
    }


def existing(db):
    for i in range(24):
        db.put_item(TableName="PetTracker", Item=pet(i))
    db.update_table(
        TableName="PetTracker",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    for i in range(24, 48):
        db.put_item(TableName="PetTracker", Item=pet(i))
    print("wrote pets 0-23 before the stream was enabled, then pets 24-47 (the table's existing items)")


def live(db):
    n = 72
    for i in range(48, n):
        db.put_item(TableName="PetTracker", Item=pet(i))
        time.sleep(0.02)
    for i in range(0, n, 4):  # updates: a birthday and a new tag
        db.update_item(
            TableName="PetTracker", Key=key(i),
            UpdateExpression="SET age = :a, tags = :t REMOVE notes",
            ExpressionAttributeValues={":a": {"N": str(1 + i % 12)}, ":t": {"SS": ["updated", "friendly"]}},
        )
    for i in range(0, n, 5):  # deletes
        db.delete_item(TableName="PetTracker", Key=key(i))
    print(f"while eddy ran: wrote pets 48-{n - 1}, updated {len(range(0, n, 4))}, deleted {len(range(0, n, 5))}")


def scan(db, table):
    items, start = [], None
    while True:
        page = db.scan(TableName=table, **({"ExclusiveStartKey": start} if start else {}))
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return {(i["PK"]["S"], i["SK"]["S"]): normalize(i) for i in items}


def normalize(value):
    """Sets compare as sets."""
    if isinstance(value, dict):
        return {k: (sorted(v) if k in ("SS", "NS", "BS") else normalize(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return value


def verify(db, timeout):
    source = scan(db, "PetTracker")
    dogs = {k: v for k, v in source.items() if v["species"]["S"] == "dog"}
    deadline = time.time() + timeout
    while True:
        replica = scan(db, "PetReplica")
        if replica == dogs:
            break
        if time.time() > deadline:
            print(f"FAILED: the replica holds {len(replica)} items, the source {len(dogs)} dogs", file=sys.stderr)
            return 1
        time.sleep(0.2)
    print(f"PetTracker holds {len(source)} pets, {len(dogs)} of them dogs; PetReplica holds exactly those {len(replica)} dogs:")
    for (pk, sk), item in sorted(replica.items()):
        print(f"  {pk:9} {sk:8} {item['name']['S']:10} chip={item['chip']['N']} tags={item['tags']['SS']}")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["setup", "existing", "live", "verify"])
    p.add_argument("--endpoint", required=True)
    p.add_argument("--timeout", type=float, default=60)
    a = p.parse_args()
    db = client(a.endpoint)
    if a.command == "setup":
        setup(db)
    elif a.command == "existing":
        existing(db)
    elif a.command == "live":
        live(db)
    else:
        return verify(db, a.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
