"""moto's server with the two EC2 calls of Elastic IP reverse DNS that moto 5 lacks, and
console output that can carry a machine's SSH host keys.

moto answers ModifyAddressAttribute with HTTP 500 (not implemented), and its
DescribeAddressesAttribute never returns a PtrRecord. This adds ModifyAddressAttribute as the
EC2 API reference describes it (AllocationId + DomainName; the answer carries the address with
its PtrRecord) and stores the name on moto's own address object, where moto's
DescribeAddressesAttribute serializer reads `PtrRecord` back. What it does not model: AWS
checks that the name's A record points at the address before it accepts the PTR.

GetConsoleOutput: moto always answers a fixed kernel log. With INFRA_MOTO_CONSOLE_DIR set, the
text of the file named by the instance's private IP in that directory (if there is one) is
appended to it, as cloud-init appends its `-----BEGIN SSH HOST KEY KEYS-----` block once the
machine booted: a test boots a sandbox host at that IP and writes the host's real keys there.

Usage: python moto_server.py -H 127.0.0.1 -p PORT   (moto_server's own flags)
"""

import os

from moto.core.utils import utcnow
from moto.ec2.responses.general import SAMPLE_CONSOLE_OUTPUT, General
from moto.ec2.utils import Base64EncodedString

from moto.core.responses import ActionResult
from moto.ec2.responses.elastic_ip_addresses import ElasticIPAddresses
from moto.ec2.models.elastic_ip_addresses import ElasticAddress


def modify_address_attribute(self):
    self.error_on_dryrun()
    allocation_id = self._get_param("AllocationId")
    name = self._get_param("DomainName")
    (address,) = self.ec2_backend.describe_addresses(allocation_ids=[allocation_id])
    address.ptr_record = name.rstrip(".") + "." if name else None
    return ActionResult(
        {
            "Address": {
                "AllocationId": address.allocation_id,
                "PublicIp": address.public_ip,
                "PtrRecord": address.ptr_record,
            }
        }
    )


def get_console_output(self):
    instance = self.ec2_backend.get_instance(self._get_param("InstanceId"))
    text = SAMPLE_CONSOLE_OUTPUT
    directory = os.environ.get("INFRA_MOTO_CONSOLE_DIR")
    if directory and instance.private_ip:
        path = os.path.join(directory, instance.private_ip)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                text += f.read()
    return ActionResult(
        {
            "InstanceId": instance.id,
            "Timestamp": utcnow(),
            "Output": Base64EncodedString.from_raw_string(text),
        }
    )


ElasticIPAddresses.modify_address_attribute = modify_address_attribute
General.get_console_output = get_console_output
ElasticAddress.ptr_record = None

if __name__ == "__main__":
    from moto.server import main

    main()
