/**
 * Owns: where the scorer writes points (reference §4) and with what token.
 * Differs by stage: an external InfluxDB (URL from `WAF_INFLUXDB_URL` at deploy, org, bucket,
 * API v2 or v1), or, for a stage with `influx.managed`, an Amazon Timestream for InfluxDB
 * instance in the VPC's private subnets (off by default). Either way the token is the
 * `InfluxToken` secret (for Timestream: an all-access token created in its InfluxDB UI).
 */
import { vpc } from "./network.ts";
import { influxToken } from "./secrets.ts";
import { namePrefix, settings } from "./settings.ts";
import { requireInfluxUrl } from "./stages.ts";

function managedInstance(managed: { instanceType: string; storageGb: number; multiAz: boolean }) {
  const adminPassword = new sst.Secret("InfluxAdminPassword");
  return new aws.timestreaminfluxdb.DbInstance("Influx", {
    name: namePrefix.slice(0, 40),
    dbInstanceType: managed.instanceType,
    allocatedStorage: managed.storageGb,
    deploymentType: managed.multiAz ? "WITH_MULTIAZ_STANDBY" : "SINGLE_AZ",
    organization: settings.influx.org,
    bucket: settings.influx.bucket,
    username: "admin",
    password: adminPassword.value,
    publiclyAccessible: false,
    vpcSubnetIds: vpc.privateSubnets,
    vpcSecurityGroupIds: vpc.securityGroups,
  });
}

const instance = settings.influx.managed ? managedInstance(settings.influx.managed) : undefined;

export const influx = {
  url: instance ? $interpolate`https://${instance.endpoint}:8086` : requireInfluxUrl(settings),
  token: influxToken,
};
