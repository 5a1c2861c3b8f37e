"""Checks flow's statement envelopes with the reference Python tools.

usage: check_statement.py PUBLIC_KEY_PEM STATEMENT_ENVELOPE...

For each `<step>.intoto.json`:
- the DSSE signature verifies with securesystemslib (`dsse.Envelope.verify`, threshold 1)
  using the key loaded from the SubjectPublicKeyInfo PEM, as in-toto 3.1 loads it;
- the payload parses STRICTLY (unknown fields are errors) as an in-toto Statement v1
  with the in-toto-attestation protobuf models, and passes `Statement.validate()`;
- the predicate parses strictly as SLSA Provenance v1 and every resource descriptor in
  it passes `ResourceDescriptor.validate()`.

Exits 1 on the first failure, naming the file and the reason.
"""

import base64
import json
import sys

from cryptography.hazmat.primitives.serialization import load_pem_public_key
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

PAYLOAD_TYPE = "application/vnd.in-toto+json"


def check(key, path):
    with open(path, encoding="utf-8") as f:
        envelope = Envelope.from_dict(json.load(f))
    if envelope.payload_type != PAYLOAD_TYPE:
        raise ValueError(f"payloadType is {envelope.payload_type!r}")
    # Raises VerificationError unless `key` signed it (matched by keyid).
    envelope.verify([key], 1)

    text = envelope.payload.decode("utf-8")
    statement_pb = json_format.Parse(text, statement_pb2.Statement())  # strict
    Statement.copy_from_pb(statement_pb).validate()
    if statement_pb.predicate_type != "https://slsa.dev/provenance/v1":
        raise ValueError(f"predicateType is {statement_pb.predicate_type!r}")

    predicate = json.loads(text)["predicate"]
    provenance = json_format.Parse(json.dumps(predicate), provenance_pb2.Provenance())  # strict
    build = provenance.build_definition
    if not build.build_type or not provenance.run_details.builder.id:
        raise ValueError("buildType and builder.id are required")
    for rd in list(build.resolved_dependencies) + list(provenance.run_details.byproducts):
        ResourceDescriptor.copy_from_pb(rd).validate()
    return statement_pb, provenance


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], "rb") as f:
        key = SSlibKey.from_crypto(load_pem_public_key(f.read()))
    for path in argv[2:]:
        try:
            statement, provenance = check(key, path)
        except Exception as e:  # noqa: BLE001 - report any failure with its type
            print(f"FAIL {path}: {type(e).__name__}: {e}")
            return 1
        meta = provenance.run_details.metadata
        print(
            f"ok {path}: {len(statement.subject)} subject(s), "
            f"{len(provenance.build_definition.resolved_dependencies)} dependencies, "
            f"invocation {meta.invocation_id}, builder {provenance.run_details.builder.id}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
