/**
 * Owns: the VPC the cluster, a managed Redis and a managed InfluxDB live in.
 * Differs by stage: NAT (needed when the functions join the VPC to reach a managed Redis or
 * InfluxDB; `fck-nat` EC2 in dev/staging, none in production where both are external) and a
 * bastion for `sst tunnel` to a managed Redis.
 * Reader tasks run in the public subnets with a public IP (SST's Cluster default), so they reach
 * ECR, Lambda and an external Redis without NAT.
 */
import { settings } from "./settings.ts";

export const vpc = new sst.aws.Vpc("Vpc", {
  nat: settings.network.nat === "none" ? undefined : settings.network.nat,
  bastion: settings.network.bastion,
});
