// The client side of GameSync, a port of interplay.core.game_client.ClientPlayer and
// interplay.core.game.GameMirror: actions are numbered 1, 2, 3, ... and re-sent after a reconnect
// until a state confirms them (the player's `lastSequence`); the server ignores repeats. The
// mirror follows the states: a full state replaces everything; a delta removes the players its
// `leave` events name, then updates the players it carries.

function player(wire) {
  return {
    id: wire.playerId ?? wire.player_id ?? "",
    x: Number(wire.x ?? 0),
    y: Number(wire.y ?? 0),
    health: Number(wire.health ?? 0),
    attributes: wire.attributes ?? {},
    lastSequence: Number(wire.lastSequence ?? wire.last_sequence ?? 0),
  };
}

export class GameMirror {
  constructor() {
    this.tick = null;
    this.players = new Map();
  }

  apply(state) {
    const players = (state.players ?? []).map(player);
    if (state.full) {
      this.players = new Map(players.map((p) => [p.id, p]));
    } else {
      if (this.tick === null) throw new Error("a delta state before any full state");
      for (const event of state.events ?? []) {
        if ((event.eventType ?? event.event_type) === "leave") this.players.delete(event.data);
      }
      for (const p of players) this.players.set(p.id, p);
    }
    this.tick = Number(state.tick ?? 0);
  }
}

export class ClientPlayer {
  constructor(playerId, match = "") {
    if (!playerId) throw new Error("player: must not be empty");
    this.player = playerId;
    this.match = match;
    this.mirror = new GameMirror();
    this.sequence = 0; // the last one numbered
    this.confirmed = 0;
    this.unconfirmed = new Map(); // sequence -> action frame, in order
    this.fullStates = 0;
    this.deltaStates = 0;
  }

  /** Number an action for the next tick; it is re-sent until confirmed. */
  act(kind, parameters = {}) {
    this.sequence++;
    const frame = {
      playerId: this.player,
      actionType: kind,
      parameters,
      sequence: String(this.sequence),
      matchId: this.match,
    };
    this.unconfirmed.set(this.sequence, frame);
    return [frame];
  }

  /** A join, then every unconfirmed action. */
  connected() {
    // The mirror stays on screen until the full state that answers the join replaces it.
    return [
      { playerId: this.player, actionType: "join", matchId: this.match },
      ...this.unconfirmed.values(),
    ];
  }

  /** Apply a state to the mirror and confirm what it says was applied. */
  receive(state) {
    if (state.full) this.fullStates++;
    else this.deltaStates++;
    if (!state.full && this.mirror.tick === null) return []; // no full state yet: nothing to update
    this.mirror.apply(state);
    const me = this.mirror.players.get(this.player);
    if (me && me.lastSequence > this.confirmed) {
      this.confirmed = me.lastSequence;
      for (const sequence of [...this.unconfirmed.keys()]) {
        if (sequence <= me.lastSequence) this.unconfirmed.delete(sequence);
      }
    }
    return [];
  }
}
