"""moto's server with the two EC2 calls of Elastic IP reverse DNS that moto 5 lacks.

moto answers ModifyAddressAttribute with HTTP 500 (not implemented), and its
DescribeAddressesAttribute never returns a PtrRecord. This adds ModifyAddressAttribute as the
EC2 API reference describes it (AllocationId + DomainName; the answer carries the address with
its PtrRecord) and stores the name on moto's own address object, where moto's
DescribeAddressesAttribute serializer reads `PtrRecord` back. What it does not model: AWS
checks that the name's A record points at the address before it accepts the PTR.

Usage: python moto_server.py -H 127.0.0.1 -p PORT   (moto_server's own flags)
"""

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


ElasticIPAddresses.modify_address_attribute = modify_address_attribute
ElasticAddress.ptr_record = None

if __name__ == "__main__":
    from moto.server import main

    main()
