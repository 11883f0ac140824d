/**
 * Owns: the VPC the cluster, a managed Redis and a managed InfluxDB live in.
 * Differs by stage: availability zones and NAT (needed because the functions join the VPC to
 * reach Redis): non-production stages use one AZ with one `fck-nat` EC2 instance, production two
 * AZs with a managed NAT gateway in each. Every NAT holds an Elastic IP and the default quota is
 * 5 per region: two per stage would run out at the third stage; one per non-production stage
 * leaves room for production (2), dev, staging and one personal stage (`stages.test.ts` checks
 * the sum). A bastion for `sst tunnel` to Redis where the stage has one (it reuses the fck-nat
 * instance, so it takes no extra IP).
 * Where the stage sets `producerCidrs`, the VPC's security group admits the WAF hosts' shippers
 * on Redis's port.
 * Reader tasks run in the public subnets with a public IP (SST's Cluster default), so they reach
 * ECR, Lambda and an external Redis without NAT.
 */
import { settings } from "./settings.ts";

const { producerCidrs } = settings.network;

export const vpc = new sst.aws.Vpc("Vpc", {
  az: settings.network.azs,
  nat: settings.network.nat === "none" ? undefined : settings.network.nat,
  bastion: settings.network.bastion,
  transform: {
    // the shippers on the WAF hosts reach Redis (6379) over peering / Transit Gateway / VPN; the
    // rules join SST's inline ones (separate rule resources would fight the inline list)
    securityGroup: (args) => {
      if (producerCidrs.length === 0) return;
      args.ingress = $output(args.ingress).apply((rules) => [
        ...(rules ?? []),
        {
          description: "WAF shippers to Redis",
          protocol: "tcp",
          fromPort: 6379,
          toPort: 6379,
          cidrBlocks: producerCidrs,
        },
      ]);
    },
  },
});
