/*!
 * FaceAuth browser client. No framework, no build step; CryptoJS is needed only to decrypt
 * results (load demo_assets/crypto-js.js before this file, or set globalThis.CryptoJS).
 *
 * Loaded with a classic <script> tag it defines window.FaceAuth; under Node (CommonJS) it
 * exports the same object, which is how tests/node checks the decryption against the server.
 *
 *   const client = new FaceAuth.FaceAuthClient('https://faceauth.example.com');
 *   await client.authenticateClient(apiKey, secretKey);          // demo only: see the guide
 *   const session = await client.createAuthentication('user123', { language: 'id' }); // or createEnrollment(...)
 *   const stream = client.openStream(session.websocket_url, videoElement, { secretKey });
 *   // Frames go as binary WebSocket messages of raw JPEG bytes (frameFormat: 'binary', the
 *   // default); frameFormat: 'dataUrl' sends {"type":"frame","image":"data:image/jpeg;base64,..."}.
 *   stream.on('frame_processed', (msg) => showHint(msg.hint));
 *   const outcome = await stream.start();   // resolves on *_complete, rejects on a failure
 *   console.log(outcome.success, outcome.result);   // result = decrypted payload
 *
 * docs/websocket-guide.md documents every message, field, error code and close code.
 */
(function (root, factory) {
  'use strict';
  if (typeof module === 'object' && module.exports) {
    module.exports = factory(root);
  } else {
    root.FaceAuth = factory(root);
  }
}(typeof globalThis !== 'undefined' ? globalThis : this, function (root) {
  'use strict';

  var VERSION = '1.0.0';

  // What the quick start recommends (SPEC.md section 4): 640x480 JPEG at quality 0.8, at most
  // 10 frames per second. The server's own limits from connection_established take precedence.
  var DEFAULTS = {
    frameWidth: 640,
    frameHeight: 480,
    jpegQuality: 0.8,
    // 'binary': each frame is one binary WebSocket message of raw JPEG bytes, a third smaller
    // than base64 and no decode on the server (bench/frame_transport.py measures the CPU).
    // 'dataUrl': {"type":"frame","image":"data:image/jpeg;base64,..."} text messages, as the
    // quick start shows; the server accepts both.
    frameFormat: 'binary',
    // 110 ms rather than 100: the server measures the gap between arrivals, and network
    // jitter can shrink a 100 ms gap below the limit, which costs a rejected frame.
    frameIntervalMs: 110,
    intervalSlackMs: 10,
    // Frames sent but not yet answered. The server handles a socket's messages one at a
    // time and times each frame when its turn comes, so a frame queued behind a slow one
    // would count as "too fast" however it was paced: wait for each answer.
    maxInFlight: 1,
    // After a frame_rate_exceeded the interval grows by this much, up to maxIntervalMs.
    intervalBackoffMs: 10,
    maxIntervalMs: 200,
    // An unanswered frame older than this is written off (and 'stalled' is emitted), so a
    // lost answer cannot stop the stream for good.
    stallTimeoutMs: 15000,
    // Time to wait for the server's close after a fatal error before closing ourselves.
    closeGraceMs: 2000,
  };

  // Close codes, mirrored from auth_service/errors.py (docs/websocket-guide.md lists them).
  // The server sends a fatal `error` message with the precise code and message before it
  // closes; this table only speaks when that message was lost.
  var CLOSE_CODES = {
    1000: { code: 'closed', message: 'The server closed the session.' },
    1001: { code: 'server_going_away', message: 'The server is restarting or shutting down. Try again in a moment.' },
    1006: { code: 'connection_lost', message: 'The connection to the server dropped (network or server failure). Check the connection and try again.' },
    1009: { code: 'message_too_large', message: 'A message was larger than the server accepts.' },
    1011: { code: 'internal_error', message: 'The server hit an internal error.' },
    4004: { code: 'session_not_found', message: 'Unknown session token.' },
    4008: { code: 'session_expired', message: 'The session has expired; create a new one.' },
    4009: { code: 'session_closed', message: 'The session is already finished; session tokens are single-use.' },
    4010: { code: 'session_in_use', message: 'Another connection is already streaming for this session.' },
    4011: { code: 'idle_timeout', message: 'No message was sent for too long; the session was closed.' },
    4012: { code: 'session_cancelled', message: 'The session was cancelled.' },
    4014: { code: 'too_many_invalid_frames', message: 'Too many unusable messages in a row; the session was closed.' },
    4500: { code: 'internal_error', message: 'The server hit an internal error.' },
  };

  function FaceAuthError(code, message, details) {
    var err = new Error(message);
    Object.setPrototypeOf(err, FaceAuthError.prototype);
    err.name = 'FaceAuthError';
    err.code = code;
    details = details || {};
    // HTTP status for REST failures, WebSocket close code for stream failures.
    err.status = details.status === undefined ? null : details.status;
    err.closeCode = details.closeCode === undefined ? null : details.closeCode;
    err.details = details;
    return err;
  }
  FaceAuthError.prototype = Object.create(Error.prototype, {
    constructor: { value: FaceAuthError, writable: true, configurable: true },
  });

  function cryptoJS() {
    var lib = root.CryptoJS;
    if (!lib && typeof require === 'function') {
      try { lib = require('crypto-js'); } catch (e) { lib = null; }
    }
    if (!lib) {
      throw new FaceAuthError('cryptojs_missing',
        'CryptoJS is not loaded: include demo_assets/crypto-js.js before faceauth-client.js.');
    }
    return lib;
  }

  // ---------------------------------------------------------------------------------------
  // Result decryption. decryptResponse is the quick start's function, unchanged, so a
  // payload that decrypts here decrypts in every client written from the quick start.
  // ---------------------------------------------------------------------------------------

  function decryptResponse(encryptedPayload, secretKey) {
    var CryptoJS = cryptoJS();
    const encrypted = CryptoJS.enc.Base64.parse(encryptedPayload);

    // Extract IV and ciphertext
    const iv = CryptoJS.lib.WordArray.create(encrypted.words.slice(0, 4));
    const ciphertext = CryptoJS.lib.WordArray.create(encrypted.words.slice(4));

    // Derive key
    const key = CryptoJS.SHA256(secretKey);

    // Decrypt
    const decrypted = CryptoJS.AES.decrypt(
      { ciphertext: ciphertext },
      key,
      { iv: iv, mode: CryptoJS.mode.CBC, padding: CryptoJS.pad.Pkcs7 }
    );

    return JSON.parse(decrypted.toString(CryptoJS.enc.Utf8));
  }

  // Hex HMAC-SHA256 over the encrypted_payload string, keyed with
  // SHA-256("faceauth-hmac:" + secretKey): the integrity tag CBC alone does not give.
  function computeHmac(encryptedPayload, secretKey) {
    var CryptoJS = cryptoJS();
    var key = CryptoJS.SHA256('faceauth-hmac:' + secretKey);
    return CryptoJS.HmacSHA256(encryptedPayload, key).toString(CryptoJS.enc.Hex);
  }

  function constantTimeEqual(a, b) {
    if (a.length !== b.length) return false;
    var diff = 0;
    for (var i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
    return diff === 0;
  }

  function verifyHmac(encryptedPayload, hmacHex, secretKey) {
    return constantTimeEqual(computeHmac(encryptedPayload, secretKey), String(hmacHex).toLowerCase());
  }

  /**
   * Checks the integrity tag (when the server sent one), then decrypts.
   * encryptedData is the `encrypted_data` object of a *_complete message.
   * Returns { payload, hmacVerified } where hmacVerified is true, or null when no tag came.
   * Throws FaceAuthError 'hmac_mismatch' or 'decrypt_failed'.
   */
  function decryptResult(encryptedData, secretKey) {
    if (!encryptedData || typeof encryptedData.encrypted_payload !== 'string') {
      throw new FaceAuthError('decrypt_failed', 'The message carries no encrypted_payload.');
    }
    var hmacVerified = null;
    if (encryptedData.hmac) {
      if (!verifyHmac(encryptedData.encrypted_payload, encryptedData.hmac, secretKey)) {
        throw new FaceAuthError('hmac_mismatch',
          'The result failed its integrity check: wrong secret key, or the payload was altered.');
      }
      hmacVerified = true;
    }
    try {
      return { payload: decryptResponse(encryptedData.encrypted_payload, secretKey), hmacVerified: hmacVerified };
    } catch (e) {
      throw new FaceAuthError('decrypt_failed',
        'Could not decrypt the result: check the secret key (' + e.message + ').');
    }
  }

  // ---------------------------------------------------------------------------------------
  // Tiny event emitter shared by the stream.
  // ---------------------------------------------------------------------------------------

  function Emitter() { this._handlers = {}; }
  Emitter.prototype.on = function (type, fn) {
    (this._handlers[type] = this._handlers[type] || []).push(fn);
    return this;
  };
  Emitter.prototype.off = function (type, fn) {
    var list = this._handlers[type];
    if (list) this._handlers[type] = list.filter(function (h) { return h !== fn; });
    return this;
  };
  Emitter.prototype.emit = function (type, payload) {
    var list = (this._handlers[type] || []).slice();
    for (var i = 0; i < list.length; i++) {
      try { list[i](payload); } catch (e) { if (root.console) root.console.error(e); }
    }
  };

  // ---------------------------------------------------------------------------------------
  // REST client.
  // ---------------------------------------------------------------------------------------

  /**
   * new FaceAuthClient(baseUrl, { fetch, token })
   * baseUrl: the service's http(s) origin, e.g. "http://localhost:8000".
   * token: a JWT your backend obtained, so the browser never needs the secret key.
   */
  function FaceAuthClient(baseUrl, options) {
    options = options || {};
    this.baseUrl = String(baseUrl || '').replace(/\/+$/, '');
    this.token = options.token || null;
    this._fetch = options.fetch || (root.fetch ? root.fetch.bind(root) : null);
  }

  FaceAuthClient.prototype._request = async function (method, path, body, auth) {
    if (!this._fetch) throw new FaceAuthError('network_error', 'fetch() is not available here.');
    var headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (auth) {
      if (!this.token) {
        throw new FaceAuthError('not_authenticated', 'Call authenticateClient() (or pass a token) first.');
      }
      headers.Authorization = 'Bearer ' + this.token;
    }
    var url = this.baseUrl + path;
    var response;
    try {
      response = await this._fetch(url, {
        method: method,
        headers: headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      // fetch() hides the reason on purpose (server down, DNS, TLS, CORS all look alike).
      throw new FaceAuthError('network_error',
        'Cannot reach ' + this.baseUrl + '. Check that the server runs and that the URL is right.',
        { cause: e });
    }
    var data = null;
    var text = await response.text();
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = null; }
    }
    if (!response.ok) {
      var error = data && data.error ? data.error : {};
      throw new FaceAuthError(error.code || 'http_' + response.status,
        error.message || ('The server answered HTTP ' + response.status + '.'),
        { status: response.status, body: data });
    }
    return data;
  };

  /** POST /api/auth/client/ -> { token, client_id, expires_at }; keeps the token. */
  FaceAuthClient.prototype.authenticateClient = async function (apiKey, secretKey) {
    var data = await this._request('POST', '/api/auth/client/', { api_key: apiKey, secret_key: secretKey }, false);
    this.token = data.token;
    return data;
  };

  /**
   * POST /api/auth/enrollment/ -> { session_token, enrollment_id, websocket_url, status, target_samples, expires_at }
   * options: targetSamples, liveness ('passive' | 'active': challenges shown in frame_processed),
   *   language ('en' | 'id': the end user's hints and messages), metadata.
   */
  FaceAuthClient.prototype.createEnrollment = function (userId, options) {
    options = options || {};
    var metadata = Object.assign({}, options.metadata || {});
    if (options.targetSamples) metadata.target_samples = options.targetSamples;
    if (options.liveness) metadata.liveness = options.liveness;
    if (options.language) metadata.language = options.language;
    var body = { user_id: userId };
    if (Object.keys(metadata).length) body.metadata = metadata;
    return this._request('POST', '/api/auth/enrollment/', body, true);
  };

  /**
   * POST /api/auth/authentication/ -> { session_token, session_id, websocket_url, status, mode, expires_at }
   * With a userId: 1:1 verification. Without (null/undefined/''): 1:N identification.
   * options: liveness ('passive' | 'active'), language ('en' | 'id'), metadata.
   */
  FaceAuthClient.prototype.createAuthentication = function (userId, options) {
    options = options || {};
    var body = {};
    if (userId) body.user_id = userId;
    var metadata = Object.assign({}, options.metadata || {});
    if (options.liveness) metadata.liveness = options.liveness;
    if (options.language) metadata.language = options.language;
    if (Object.keys(metadata).length) body.metadata = metadata;
    return this._request('POST', '/api/auth/authentication/', body, true);
  };

  /** GET /api/auth/sessions/{id}/status/ */
  FaceAuthClient.prototype.getSessionStatus = function (sessionId) {
    return this._request('GET', '/api/auth/sessions/' + encodeURIComponent(sessionId) + '/status/', undefined, true);
  };

  FaceAuthClient.prototype.openStream = function (websocketUrl, video, options) {
    return new FaceAuthStream(websocketUrl, video, options);
  };

  // ---------------------------------------------------------------------------------------
  // Frame capture: the video is cropped to 4:3 (centre, like CSS object-fit: cover) and
  // scaled to 640x480, so face boxes from the server map onto a 4:3 preview by one scale.
  // ---------------------------------------------------------------------------------------

  function FrameGrabber(video, width, height) {
    this.video = video;
    this.canvas = root.document.createElement('canvas');
    this.canvas.width = width;
    this.canvas.height = height;
    this.context = this.canvas.getContext('2d');
  }

  FrameGrabber.prototype.ready = function () {
    var v = this.video;
    return v.readyState >= 2 && v.videoWidth > 0 && v.videoHeight > 0;
  };

  FrameGrabber.prototype._draw = function () {
    var v = this.video;
    var w = this.canvas.width;
    var h = this.canvas.height;
    var scale = Math.max(w / v.videoWidth, h / v.videoHeight);
    var sw = w / scale;
    var sh = h / scale;
    var sx = (v.videoWidth - sw) / 2;
    var sy = (v.videoHeight - sh) / 2;
    this.context.drawImage(v, sx, sy, sw, sh, 0, 0, w, h);
  };

  /** The current picture as a data URL (frameFormat 'dataUrl'). */
  FrameGrabber.prototype.grab = function (quality) {
    this._draw();
    return this.canvas.toDataURL('image/jpeg', quality);
  };

  /** The current picture as a Promise of a JPEG Blob (frameFormat 'binary'). */
  FrameGrabber.prototype.grabBlob = function (quality) {
    this._draw();
    var canvas = this.canvas;
    return new Promise(function (resolve) { canvas.toBlob(resolve, 'image/jpeg', quality); });
  };

  // ---------------------------------------------------------------------------------------
  // The streaming session.
  // ---------------------------------------------------------------------------------------

  /**
   * new FaceAuthStream(websocketUrl, video, options)
   * options: secretKey (decrypt the result in the browser; demo only), frameFormat
   *   ('binary', the default, or 'dataUrl'), frameWidth, frameHeight, jpegQuality,
   *   frameIntervalMs, maxInFlight, intervalBackoffMs, maxIntervalMs, stallTimeoutMs,
   *   WebSocket (see DEFAULTS).
   *
   * Events (stream.on(name, fn)):
   *   open                    socket open
   *   message                 every server message, parsed
   *   connection_established  session facts and limits
   *   frame_sent              { frameNumber, bytes, format }
   *   frame_processed         per-frame verdict (box, quality, liveness, samples, hint)
   *   server_error            a non-fatal `error` message (the stream goes on)
   *   stalled                 { waitingMs }: answers stopped coming for stallTimeoutMs
   *   complete                the *_complete message, plus `result` / `hmacVerified` /
   *                           `decryptError` when a secretKey was given
   *   failed                  a FaceAuthError (fatal error, expiry, dropped connection)
   *   close                   { code, reason, wasClean }
   */
  function FaceAuthStream(websocketUrl, video, options) {
    Emitter.call(this);
    options = options || {};
    this.url = websocketUrl;
    this.video = video;
    this.options = Object.assign({}, DEFAULTS, options);
    this.secretKey = options.secretKey || null;
    this.WebSocketImpl = options.WebSocket || root.WebSocket;
    this.session = null;            // connection_established message
    this.limits = null;
    this.framesSent = 0;
    this.framesAnswered = 0;
    this.lastMessage = null;
    this.outcome = null;
    this._ws = null;
    this._timer = null;
    this._inFlight = [];            // send times of unanswered frames, oldest first
    this._lastSentAt = 0;
    this._interval = this.options.frameIntervalMs;
    this._fatal = null;
    this._done = false;
    this._encoding = false;         // a binary frame is being compressed (toBlob is async)
    this._resolve = null;
    this._reject = null;
  }
  FaceAuthStream.prototype = Object.create(Emitter.prototype);
  FaceAuthStream.prototype.constructor = FaceAuthStream;

  /** Opens the socket and streams until the server finishes. Returns a Promise of the outcome. */
  FaceAuthStream.prototype.start = function () {
    var self = this;
    if (this._promise) return this._promise;
    this._promise = new Promise(function (resolve, reject) {
      self._resolve = resolve;
      self._reject = reject;
    });
    if (this.video && root.document) {
      this._grabber = new FrameGrabber(this.video, this.options.frameWidth, this.options.frameHeight);
    }
    var ws;
    try {
      ws = new this.WebSocketImpl(this.url);
    } catch (e) {
      this._fail(new FaceAuthError('connection_failed', 'Invalid WebSocket URL: ' + this.url, { cause: e }));
      return this._promise;
    }
    this._ws = ws;
    ws.onopen = function () { self.emit('open', {}); };
    ws.onmessage = function (event) { self._onMessage(event.data); };
    ws.onerror = function () { /* onclose follows with the code; nothing useful here */ };
    ws.onclose = function (event) { self._onClose(event); };
    return this._promise;
  };

  /** Stops streaming and closes the socket (normal closure). */
  FaceAuthStream.prototype.stop = function (reason) {
    if (this._done) return;
    this._stopLoop();
    this._fail(new FaceAuthError('cancelled', reason || 'Stopped by the user.'));
    if (this._ws && this._ws.readyState <= 1) this._ws.close(1000, 'client stopped');
  };

  /** Sends {"type":"ping"}; the server answers with a `pong` message. */
  FaceAuthStream.prototype.ping = function () {
    if (this._ws && this._ws.readyState === 1) this._ws.send(JSON.stringify({ type: 'ping' }));
  };

  FaceAuthStream.prototype._onMessage = function (raw) {
    var msg;
    try { msg = JSON.parse(raw); } catch (e) { return; }
    if (!msg || typeof msg.type !== 'string') return;
    this.lastMessage = msg;
    this.emit('message', msg);
    switch (msg.type) {
      case 'connection_established':
        this.session = msg;
        this.limits = msg.limits || {};
        this._applyLimits(this.limits);
        this.emit('connection_established', msg);
        this._schedule(0);
        break;
      case 'frame_processed':
        this._answered();
        this.emit('frame_processed', msg);
        break;
      case 'enrollment_complete':
      case 'authentication_complete':
        this._complete(msg);
        break;
      case 'error':
        this._onServerError(msg);
        break;
      default:
        this.emit(msg.type, msg);   // pong and anything newer
    }
  };

  FaceAuthStream.prototype._applyLimits = function (limits) {
    var interval = this.options.frameIntervalMs;
    if (limits.min_frame_interval_ms) {
      interval = Math.max(interval, limits.min_frame_interval_ms + this.options.intervalSlackMs);
    }
    if (limits.max_fps) {
      interval = Math.max(interval, Math.ceil(1000 / limits.max_fps) + this.options.intervalSlackMs);
    }
    this._interval = interval;
  };

  FaceAuthStream.prototype._onServerError = function (msg) {
    var err = new FaceAuthError(msg.code || 'server_error', msg.message || 'The server reported an error.',
      { fatal: !!msg.fatal, message: msg });
    if (msg.fatal) {
      // The server closes right after a fatal error; keep the error for the close handler,
      // which knows the close code too.
      this._fatal = err;
      this._stopLoop();
      var ws = this._ws;
      setTimeout(function () { if (ws && ws.readyState <= 1) ws.close(1000, 'fatal error received'); },
        this.options.closeGraceMs);
      return;
    }
    // A non-fatal error answers a frame (bad image, too fast, ...): the stream goes on.
    this._answered();
    if (msg.code === 'frame_rate_exceeded') {
      this._interval = Math.min(this._interval + this.options.intervalBackoffMs, this.options.maxIntervalMs);
    }
    this.emit('server_error', err);
  };

  FaceAuthStream.prototype._complete = function (msg) {
    this._stopLoop();
    var outcome = Object.assign({}, msg);
    if (this.secretKey && msg.encrypted_data) {
      try {
        var decrypted = decryptResult(msg.encrypted_data, this.secretKey);
        outcome.result = decrypted.payload;
        outcome.hmacVerified = decrypted.hmacVerified;
      } catch (e) {
        outcome.decryptError = e;
      }
    }
    this.outcome = outcome;
    this._done = true;
    this.emit('complete', outcome);
    if (this._resolve) this._resolve(outcome);
  };

  FaceAuthStream.prototype._fail = function (err) {
    if (this._done) return;
    this._done = true;
    this._stopLoop();
    this.emit('failed', err);
    if (this._reject) this._reject(err);
  };

  FaceAuthStream.prototype._onClose = function (event) {
    this._stopLoop();
    this.emit('close', { code: event.code, reason: event.reason, wasClean: event.wasClean });
    if (this._done) return;
    var err = this._fatal;
    if (err) {
      err.closeCode = event.code;
    } else {
      var known = CLOSE_CODES[event.code];
      if (event.code >= 4000 && (known || event.reason)) {
        err = new FaceAuthError(known ? known.code : 'closed_' + event.code,
          event.reason || known.message, { closeCode: event.code });
      } else if (known) {
        var message = known.message;
        if (event.code === 1006 && !this.session) {
          message = 'Could not open the WebSocket at ' + this.url +
            ' (server down, wrong URL, an origin the server refuses, or a used or unknown session token).';
        }
        err = new FaceAuthError(event.code === 1000 ? 'closed_early' : known.code, message, { closeCode: event.code });
      } else {
        err = new FaceAuthError('closed_' + event.code,
          event.reason || 'The connection closed (code ' + event.code + ').', { closeCode: event.code });
      }
    }
    this._fail(err);
  };

  // ----- frame pacing -------------------------------------------------------------------

  FaceAuthStream.prototype._stopLoop = function () {
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
  };

  FaceAuthStream.prototype._schedule = function (delayMs) {
    var self = this;
    this._stopLoop();
    if (this._done || this._fatal) return;
    this._timer = setTimeout(function () { self._timer = null; self._tick(); }, Math.max(0, delayMs));
  };

  FaceAuthStream.prototype._answered = function () {
    this.framesAnswered += 1;
    this._inFlight.shift();
    // An answer frees a slot: send the next frame as soon as the interval allows.
    if (this._timer === null) this._schedule(this._interval - (Date.now() - this._lastSentAt));
  };

  FaceAuthStream.prototype._tick = function () {
    var ws = this._ws;
    if (this._done || this._fatal || !ws || ws.readyState !== 1) return;
    if (this._encoding) return;   // the frame being compressed schedules the next tick
    var now = Date.now();
    var maxFrames = this.limits && this.limits.max_frames;
    if (maxFrames && this.framesSent >= maxFrames) return;   // the server decides what follows
    var wait = this._interval - (now - this._lastSentAt);
    if (wait > 0) { this._schedule(wait); return; }
    if (this._inFlight.length >= this.options.maxInFlight) {
      var waiting = now - this._inFlight[0];
      if (waiting < this.options.stallTimeoutMs) { this._schedule(20); return; }
      this.emit('stalled', { waitingMs: waiting });
      this._inFlight.shift();
    }
    if (!this._grabber || !this._grabber.ready()) { this._schedule(50); return; }
    if (this.options.frameFormat === 'dataUrl') {
      var frame = this._encode();
      if (frame) this._sent(now, JSON.stringify({ type: 'frame', image: frame }), frame.length);
      this._schedule(this._interval);
      return;
    }
    // Binary: the JPEG arrives asynchronously; the next tick is scheduled once it is sent.
    var self = this;
    this._encoding = true;
    this._encodeBinary().then(function (blob) {
      self._encoding = false;
      if (self._done || self._fatal || ws.readyState !== 1) return;
      if (blob) self._sent(now, blob, blob.size);
      self._schedule(self._interval - (Date.now() - self._lastSentAt));
    }, function (e) {
      self._encoding = false;
      self._fail(new FaceAuthError('encode_failed', 'Could not encode a camera frame as JPEG.', { cause: e }));
    });
  };

  FaceAuthStream.prototype._sent = function (startedAt, data, bytes) {
    this._ws.send(data);
    this._lastSentAt = startedAt;
    this._inFlight.push(startedAt);
    this.framesSent += 1;
    this.emit('frame_sent', { frameNumber: this.framesSent, bytes: bytes, format: this.options.frameFormat });
  };

  FaceAuthStream.prototype._encodeBinary = async function () {
    var limit = this.limits && this.limits.max_message_bytes;
    var quality = this.options.jpegQuality;
    // As _encode: once more at a lower quality rather than a frame the server must reject.
    for (var attempt = 0; attempt < 2; attempt++) {
      var blob = await this._grabber.grabBlob(quality);
      if (!blob) return null;
      if (!limit || blob.size <= limit) return blob;
      quality = 0.6;
    }
    return null;
  };

  FaceAuthStream.prototype._encode = function () {
    var limit = this.limits && this.limits.max_message_bytes;
    var quality = this.options.jpegQuality;
    // The JSON wrapper adds ~30 bytes; a busy scene at q=0.8 can exceed a small limit, so
    // retry once at a lower quality rather than sending a frame the server must reject.
    for (var attempt = 0; attempt < 2; attempt++) {
      var dataUrl = this._grabber.grab(quality);
      if (!limit || dataUrl.length + 64 <= limit) return dataUrl;
      quality = 0.6;
    }
    return null;
  };

  return {
    VERSION: VERSION,
    DEFAULTS: DEFAULTS,
    CLOSE_CODES: CLOSE_CODES,
    FaceAuthClient: FaceAuthClient,
    FaceAuthStream: FaceAuthStream,
    FaceAuthError: FaceAuthError,
    decryptResponse: decryptResponse,
    decryptResult: decryptResult,
    verifyHmac: verifyHmac,
    computeHmac: computeHmac,
  };
}));
