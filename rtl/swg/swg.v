// Sliding-window generator (FINN's ConvolutionInputGenerator, default style, 2D, dilation 1): turns a
// channels-last image stream into the MVAU's windows, window (oy, ox) emitted as (ky, kx, channel
// fold) words, channels fastest, so word order matches the MVAU's MW index (ky*K_W + kx)*C + c.
//
// A circular line buffer of 2^ceil(log2(((K_H+S_H-1)*IW + K_W+S_W)*CF)) words holds the rows
// the windows still need; the writer stores one input word per cycle while the oldest needed word
// is less than the buffer's size behind; the reader starts a frame once FINN's buffer_min words
// ((K_H-1)*IW + K_W)*CF are in, then emits one window word per cycle as soon as it has arrived.
// Frames do not overlap (the next frame's first word is taken after the last window word), so
// one evaluation takes buffer_min + OH * max(OW*K_H*K_W*CF, S_W*IW*CF) cycles, FINN's formula, for
// square strides (the only ones hwsim maps; with S_H != S_W the block is correct but slower or faster).
`default_nettype none

module swg #(
    parameter integer K_H = 3,
    parameter integer K_W = 3,
    parameter integer IH = 6,
    parameter integer IW = 6,
    parameter integer S_H = 1,
    parameter integer S_W = 1,
    parameter integer CHANNELS = 2,
    parameter integer SIMD = 1,
    parameter integer BITS = 8
) (
    input  wire                 clk,
    input  wire                 rst,
    input  wire                 in_valid,
    output wire                 in_ready,
    input  wire [SIMD*BITS-1:0] in_data,
    output reg                  out_valid,
    input  wire                 out_ready,
    output reg  [SIMD*BITS-1:0] out_data
);
    localparam integer CF = CHANNELS / SIMD;
    localparam integer OH = (IH - K_H) / S_H + 1;
    localparam integer OW = (IW - K_W) / S_W + 1;
    localparam integer TOTAL_IN = IH * IW * CF;
    localparam integer BUFFER_MIN = ((K_H - 1) * IW + K_W) * CF;
    localparam integer AB = $clog2(((K_H + S_H - 1) * IW + K_W + S_W) * CF);
    localparam integer DEPTH = 1 << AB;
    // counters as wide as their ranges, not 32 bits: their compares feed in_ready, which the
    // ready chain of a stitched design carries through every upstream block in one cycle
    localparam integer PW = $clog2(TOTAL_IN + 1);             // word positions 0 .. TOTAL_IN
    localparam integer CW = $clog2(OH + OW + K_H + K_W + CF);  // window counters

    reg [SIMD*BITS-1:0] mem [0:DEPTH-1];
    reg [PW-1:0] wcount;               // words of the current frame written
    reg [CW-1:0] oy, ox, ky, kx, c;    // the next window word to emit
    reg rdone;                         // every window word of the frame emitted
    // its position p = ((oy*S_H + ky)*IW + ox*S_W + kx)*CF + c and the window's oldest word
    // (oy*S_H*IW + ox*S_W)*CF, kept in registers stepped with the counters (adds of constants, no
    // multiplier): row = oy*S_H*IW*CF, oldest, krow = oldest + ky*IW*CF
    reg [PW-1:0] p, oldest, row, krow;
    wire [PW-1:0] ahead = wcount - oldest;
    wire [AB+PW-1:0] waddr = wcount, raddr = p;  // memory addresses: the low AB bits
    wire started = (wcount >= BUFFER_MIN) || (wcount == TOTAL_IN);
    wire en = !out_valid || out_ready;
    wire rfire = en && !rdone && started && (p < wcount);
    wire last_read = (oy == OH - 1) && (ox == OW - 1) && (ky == K_H - 1) && (kx == K_W - 1) && (c == CF - 1);
    // a write may run ahead of the oldest needed word by less than the buffer; the reader's oldest
    // word can also lie ahead of the writer (columns or rows no window reads)
    assign in_ready = (wcount < TOTAL_IN) && (rdone || wcount < oldest || ahead < DEPTH);
    wire wfire = in_valid && in_ready;
    wire all_written = (wcount == TOTAL_IN) || (wfire && wcount == TOTAL_IN - 1);
    wire frame_end = (rdone || (rfire && last_read)) && all_written;

    always @(posedge clk) begin
        if (rst) begin
            wcount <= 0;
            rdone <= 1'b0;
            out_valid <= 1'b0;
            {oy, ox, ky, kx, c} <= 0;
            {p, oldest, row, krow} <= 0;
        end else begin
            if (wfire) mem[waddr[AB-1:0]] <= in_data;
            if (frame_end) begin
                wcount <= 0;
                rdone <= 1'b0;
            end else begin
                if (wfire) wcount <= wcount + 1;
                if (rfire && last_read) rdone <= 1'b1;
            end
            if (en) begin
                out_valid <= rfire;
                if (rfire) out_data <= mem[raddr[AB-1:0]];
            end
            if (rfire) begin
                if (c != CF - 1) begin
                    c <= c + 1;
                    p <= p + 1;
                end else begin
                    c <= 0;
                    if (kx != K_W - 1) begin
                        kx <= kx + 1;
                        p <= p + 1;  // (kx + 1)*CF = kx*CF + (CF - 1) + 1
                    end else begin
                        kx <= 0;
                        if (ky != K_H - 1) begin
                            ky <= ky + 1;
                            krow <= krow + IW * CF;
                            p <= krow + IW * CF;
                        end else begin
                            ky <= 0;
                            if (ox != OW - 1) begin
                                ox <= ox + 1;
                                oldest <= oldest + S_W * CF;
                                krow <= oldest + S_W * CF;
                                p <= oldest + S_W * CF;
                            end else begin
                                ox <= 0;
                                if (oy == OH - 1) begin
                                    oy <= 0;
                                    {p, oldest, row, krow} <= 0;
                                end else begin
                                    oy <= oy + 1;
                                    row <= row + S_H * IW * CF;
                                    oldest <= row + S_H * IW * CF;
                                    krow <= row + S_H * IW * CF;
                                    p <= row + S_H * IW * CF;
                                end
                            end
                        end
                    end
                end
            end
        end
    end
endmodule

`default_nettype wire
