#!/usr/bin/env python3
"""Reads and changes objects in the S3 server and in Azurite with the
providers' own clients (boto3, azure-storage-blob), independently of
vecport, for tests/integration/object_store.rs.

Run with the interpreter of `vdb_install_python` (tests/servers.sh). The
first argument names the provider, `s3` or `az`; the connection comes from
the environment the way the providers' tools read it:

  s3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL (path-style
      requests, region us-east-1)
  az: AZURE_STORAGE_ACCOUNT_NAME, AZURE_STORAGE_ACCOUNT_KEY,
      AZURITE_BLOB_STORAGE_URL (the account is the first path segment)

Commands (CONTAINER is the bucket or container; output is JSON on stdout):

  list P CONTAINER PREFIX            [{"key", "size", "etag"}] of every object under PREFIX, by key
  uncommitted P CONTAINER PREFIX     keys under PREFIX with blocks staged but never committed (az)
  download P CONTAINER PREFIX DIR    every object under PREFIX into DIR/<key less PREFIX>; the list
  upload P CONTAINER DIR PREFIX      every file under DIR to PREFIX/<its path in DIR>
  get P CONTAINER KEY FILE           the object's bytes into FILE
  put P CONTAINER KEY FILE           FILE's bytes as the object
  delete P CONTAINER KEY...          the objects
  flip P CONTAINER KEY OFFSET        the object with its byte at OFFSET inverted
  truncate P CONTAINER KEY LENGTH    the object cut to its first LENGTH bytes
  create P CONTAINER                 a new bucket or container
  stage P CONTAINER KEY              an upload begun and left open: S3, a multipart upload with
                                     one part; Azure, one staged block (prints the upload id)
  unstage P CONTAINER KEY ID         that upload ended: S3, aborted; Azure, committed empty and
                                     deleted
  sas az CONTAINER                   a SAS token for the container (read, write, delete, list; 1 hour)
"""

import datetime
import json
import os
import sys


def s3():
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            # s3s-fs checks no CRC32 trailers: plain signed payloads.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def az_account_url():
    return f"{os.environ['AZURITE_BLOB_STORAGE_URL'].rstrip('/')}/{os.environ['AZURE_STORAGE_ACCOUNT_NAME']}"


def az(container):
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient(
        az_account_url(),
        credential={
            "account_name": os.environ["AZURE_STORAGE_ACCOUNT_NAME"],
            "account_key": os.environ["AZURE_STORAGE_ACCOUNT_KEY"],
        },
    )
    return service, service.get_container_client(container)


def listing(provider, container, prefix):
    out = []
    if provider == "s3":
        client = s3()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=container, Prefix=prefix):
            for o in page.get("Contents", []):
                # s3s-fs lists no ETag: HeadObject gives it.
                etag = o.get("ETag") or client.head_object(Bucket=container, Key=o["Key"]).get("ETag", "")
                out.append({"key": o["Key"], "size": o["Size"], "etag": etag.strip('"')})
    else:
        for b in az(container)[1].list_blobs(name_starts_with=prefix):
            out.append({"key": b.name, "size": b.size, "etag": (b.etag or "").strip('"')})
    out.sort(key=lambda o: o["key"])
    return out


def read(provider, container, key):
    if provider == "s3":
        return s3().get_object(Bucket=container, Key=key)["Body"].read()
    return az(container)[1].download_blob(key).readall()


def write(provider, container, key, data):
    if provider == "s3":
        s3().put_object(Bucket=container, Key=key, Body=data)
    else:
        az(container)[1].upload_blob(key, data, overwrite=True)


def main(argv):
    command, provider = argv[0], argv[1]
    if provider not in ("s3", "az"):
        sys.exit(f"provider must be s3 or az, not {provider!r}")
    args = argv[2:]
    result = None
    if command == "list":
        result = listing(provider, args[0], args[1])
    elif command == "uncommitted":
        container, prefix = args
        if provider != "az":
            sys.exit("uncommitted: S3 servers list open uploads with ListMultipartUploads")
        committed = {o["key"] for o in listing(provider, container, prefix)}
        staged = az(container)[1].list_blobs(name_starts_with=prefix, include=["uncommittedblobs"])
        result = sorted({b.name for b in staged} - committed)
    elif command == "download":
        container, prefix, target = args
        result = listing(provider, container, prefix)
        for o in result:
            relative = o["key"][len(prefix):].lstrip("/")
            path = os.path.join(target, relative)
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            data = read(provider, container, o["key"])
            assert len(data) == o["size"], (o, len(data))
            with open(path, "wb") as f:
                f.write(data)
    elif command == "upload":
        container, source, prefix = args
        result = []
        for root, _dirs, files in os.walk(source):
            for name in sorted(files):
                path = os.path.join(root, name)
                key = f"{prefix.rstrip('/')}/{os.path.relpath(path, source)}"
                with open(path, "rb") as f:
                    write(provider, container, key, f.read())
                result.append(key)
    elif command == "get":
        container, key, path = args
        with open(path, "wb") as f:
            f.write(read(provider, container, key))
    elif command == "put":
        container, key, path = args
        with open(path, "rb") as f:
            write(provider, container, key, f.read())
    elif command == "delete":
        container, keys = args[0], args[1:]
        for key in keys:
            if provider == "s3":
                s3().delete_object(Bucket=container, Key=key)
            else:
                az(container)[1].delete_blob(key)
    elif command == "flip":
        container, key, offset = args[0], args[1], int(args[2])
        data = bytearray(read(provider, container, key))
        data[offset] ^= 0xFF
        write(provider, container, key, bytes(data))
    elif command == "truncate":
        container, key, length = args[0], args[1], int(args[2])
        write(provider, container, key, read(provider, container, key)[:length])
    elif command == "create":
        if provider == "s3":
            s3().create_bucket(Bucket=args[0])
        else:
            az(args[0])[0].create_container(args[0])
    elif command == "stage":
        container, key = args
        if provider == "s3":
            client = s3()
            result = client.create_multipart_upload(Bucket=container, Key=key)["UploadId"]
            client.upload_part(Bucket=container, Key=key, UploadId=result, PartNumber=1, Body=b"x" * 1024)
        else:
            import base64

            result = base64.b64encode(b"block-0").decode()
            az(container)[1].get_blob_client(key).stage_block(result, b"x" * 1024)
    elif command == "unstage":
        container, key, upload = args
        if provider == "s3":
            s3().abort_multipart_upload(Bucket=container, Key=key, UploadId=upload)
        else:
            blob = az(container)[1].get_blob_client(key)
            blob.commit_block_list([])
            blob.delete_blob()
    elif command == "sas":
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        result = generate_container_sas(
            os.environ["AZURE_STORAGE_ACCOUNT_NAME"],
            args[0],
            account_key=os.environ["AZURE_STORAGE_ACCOUNT_KEY"],
            permission=ContainerSasPermissions(read=True, write=True, delete=True, list=True, add=True, create=True),
            expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1),
        )
    else:
        sys.exit(f"unknown command {command!r}")
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
