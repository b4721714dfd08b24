/** Counters the server reports at exit. */
export interface ServerStats {
  framesBroadcast: number;
  datagramsSent: number;
  /** Datagrams the socket did not take at once (send buffer full), sent again on a later tick. */
  sendRetries: number;
  /** Sends that threw (a pending ICMP error is reported this way too; those are retried). */
  sendErrors: number;
  /** ICMP errors the socket reported (port unreachable: a viewer's process is gone). */
  icmpErrors: number;
  /** Datagrams given up after sends kept failing. */
  datagramsDropped: number;
  datagramsSuperseded: number;
  /** Frames that cannot be sent: empty, or more fragments than the header can count. */
  framesNotSent: number;
  /** Pictures sent to classroom viewers, one datagram each, resends included. */
  classicDatagramsSent: number;
  /** Pictures for classroom viewers the socket did not take or that kept failing (their resend covers them). */
  classicSendErrors: number;
  /** Frames that could not be fitted into one classroom datagram (skipped). */
  classicFitFailures: number;
  /** Datagrams on the UDP socket that were no classroom viewer's answer (strangers, garbage), or more answers than pictures sent. */
  classicAnswersIgnored: number;
  /** Bytes classroom viewers sent on TCP after their port number, which they never should. */
  classicTcpBytesIgnored: number;
  /** Connections reset before the server could look at them (no peer address left). */
  connectionsGoneAtOpen: number;
  /** Control messages with a missing or wrong tag (dropped). */
  controlForged: number;
  /** Wrong token proofs (each logged as refused reason=auth). */
  authFailures: number;
  /** Token proofs looked at, right or wrong: what a guesser gets answers to. */
  authProofsEvaluated: number;
  /** Hellos and proofs refused unlooked-at: the address, its network or the server locked out. */
  authLockedRefusals: number;
  /** Addresses refused as locked because the lockout table was full of locked ones. */
  authTableRefused: number;
  /** Reports and bye totals that claimed more than was sent (ignored). */
  reportsRejected: number;
  /** Connections closed to make room for newer ones while many waited for their hello. */
  pendingEvicted: number;
  /** Frames encrypted: once each, whatever the number of viewers. */
  framesEncrypted: number;
  /** Stream keys started after the first (viewers leaving, counters running out). */
  keyRotations: number;
  /** Frames sent to the multicast groups (once each per layer group, whatever the number of viewers in it). */
  groupFramesSent: number;
  /** Frames sent to the smaller layers' own groups (counted in groupFramesSent too). */
  layerGroupFramesSent: number;
  /** Group members that said they moved to another layer's group. */
  groupLayerMoves: number;
  /** Datagrams sent to the multicast group (counted in datagramsSent too). */
  groupDatagramsSent: number;
  /** Viewers the group did not reach, switched to unicast. */
  fallbacks: number;
  /** Frames signed: once each, whatever the number of viewers. */
  framesSigned: number;
  /** Whole frames not sent to a rate-paced viewer because its previous frame was still on its way (all viewers). */
  framesSkipped: number;
  /** TCP delivery: frames written to TCP viewers, frames skipped because their connection still held the last, their datagrams. */
  tcpFramesSent: number;
  tcpFramesSkipped: number;
  tcpDatagramsSent: number;
  /** Viewers on TCP delivery now. */
  tcpViewers: number;
  /** Viewers whose reports showed that no datagram reached them by UDP (each counted once). */
  noDatagramsViewers: number;
  /** Path reports refused as impossible or absurd (claiming more than was sent, counters going back). */
  pathReportsRefused: number;
  /** Times a path-reports viewer was moved to another quality layer. */
  layerChanges: number;
  /** Lower-layer copies of frames encoded (once per frame and layer, whatever the number of viewers on it). */
  layerFramesEncoded: number;
  /** Lower-layer copies that could not be made (the frame did not decode) or came too late. */
  layerFramesFailed: number;
  /** Datagrams resent on viewers' repair requests (counted in datagramsSent too), and their bytes. */
  repairDatagramsResent: number;
  repairBytesResent: number;
  /** Repair messages dropped over a viewer's request rate. */
  repairRequestsDropped: number;
  /** Gone messages sent (frames no longer held, or over a viewer's byte budget). */
  repairGoneSent: number;
  /** Audio packets captured and sent on (once each, whatever the number of viewers). */
  audioPacketsBroadcast: number;
  /** Audio datagrams sent: one per packet to each unicast viewer that plays audio, one per group in use. */
  audioDatagramsSent: number;
  /** Audio datagrams not sent: the socket refused them, or a TCP viewer's connection was still full. */
  audioDatagramsDropped: number;
}

/** Every counter at zero. */
export function newServerStats(): ServerStats {
  return {
    framesBroadcast: 0, datagramsSent: 0, sendRetries: 0, sendErrors: 0, icmpErrors: 0, datagramsDropped: 0, datagramsSuperseded: 0, framesNotSent: 0,
    classicDatagramsSent: 0, classicSendErrors: 0, classicFitFailures: 0, classicAnswersIgnored: 0, classicTcpBytesIgnored: 0,
    connectionsGoneAtOpen: 0, controlForged: 0, authFailures: 0, authProofsEvaluated: 0, authLockedRefusals: 0, authTableRefused: 0, reportsRejected: 0, pendingEvicted: 0, framesEncrypted: 0, keyRotations: 0,
    groupFramesSent: 0, layerGroupFramesSent: 0, groupLayerMoves: 0, groupDatagramsSent: 0, fallbacks: 0, framesSigned: 0,
    framesSkipped: 0, tcpFramesSent: 0, tcpFramesSkipped: 0, tcpDatagramsSent: 0, tcpViewers: 0, noDatagramsViewers: 0, pathReportsRefused: 0, layerChanges: 0, layerFramesEncoded: 0, layerFramesFailed: 0,
    repairDatagramsResent: 0, repairBytesResent: 0, repairRequestsDropped: 0, repairGoneSent: 0,
    audioPacketsBroadcast: 0, audioDatagramsSent: 0, audioDatagramsDropped: 0,
  };
}
