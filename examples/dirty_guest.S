/* dirty_guest.S: a multiboot guest for real QEMU that dirties memory at a steady rate.
 *
 * Each tick of a 1 kHz PIT interrupt increments one byte in each of the next
 * `pages_per_tick` pages of [ws_start, ws_end), wrapping around; between ticks the
 * CPU halts, so the guest costs little host CPU. qapigen_vm.tools.qemu_guest
 * holds the assembled bytes and patches the parameters at offset 32. Rebuild with:
 *   as --32 -o dirty_guest.o dirty_guest.S
 *   objcopy -O binary -j .text dirty_guest.o dirty_guest.bin */
    .code32
    .set MB_MAGIC, 0x1BADB002
    .set MB_FLAGS, 0x00010000          /* the address fields below are valid */
    .set LOAD, 0x100000
    .set STACK, 0x90000
    .set PIT_DIVISOR, 1193             /* 1193182 Hz / 1193 = 1000 Hz */

    .globl _start
base:
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)
    .long LOAD                         /* header_addr */
    .long LOAD                         /* load_addr */
    .long 0                            /* load_end_addr: the whole file */
    .long 0                            /* bss_end_addr: none */
    .long LOAD + (_start - base)       /* entry_addr */
/* offset 32: parameters, patched by whoever builds the image */
pages_per_tick: .long 20
ws_start:       .long 0x200000
ws_end:         .long 0x3000000
cursor:         .long 0x200000

    .p2align 3
gdt:
    .quad 0
    .quad 0x00cf9a000000ffff           /* 0x08: flat 32-bit code */
    .quad 0x00cf92000000ffff           /* 0x10: flat 32-bit data */
gdtr:
    .word gdtr - gdt - 1
    .long LOAD + (gdt - base)
idtr:
    .word 48 * 8 - 1
    .long idt_addr
    .set idt_addr, 0x80000

_start:
    cli
    lgdt LOAD + (gdtr - base)
    ljmp $0x08, $(LOAD + (1f - base))
1:  mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %ax, %fs
    mov %ax, %gs
    mov $STACK, %esp

    /* IDT: 48 interrupt gates, all to `spurious` except vector 0x20 (IRQ0) */
    mov $idt_addr, %edi
    mov $48, %ecx
2:  mov $(LOAD + (spurious - base)), %eax
    cmp $(48 - 0x20), %ecx
    jne 3f
    mov $(LOAD + (tick - base)), %eax
3:  mov %ax, (%edi)
    movw $0x08, 2(%edi)
    movw $0x8e00, 4(%edi)
    shr $16, %eax
    mov %ax, 6(%edi)
    add $8, %edi
    loop 2b
    lidt LOAD + (idtr - base)

    /* PICs: master at vector 0x20, slave at 0x28; only IRQ0 unmasked */
    mov $0x11, %al
    out %al, $0x20
    out %al, $0xa0
    mov $0x20, %al
    out %al, $0x21
    mov $0x28, %al
    out %al, $0xa1
    mov $0x04, %al
    out %al, $0x21
    mov $0x02, %al
    out %al, $0xa1
    mov $0x01, %al
    out %al, $0x21
    out %al, $0xa1
    mov $0xfe, %al
    out %al, $0x21
    mov $0xff, %al
    out %al, $0xa1

    /* PIT channel 0, rate generator */
    mov $0x34, %al
    out %al, $0x43
    mov $(PIT_DIVISOR & 0xff), %al
    out %al, $0x40
    mov $(PIT_DIVISOR >> 8), %al
    out %al, $0x40

    sti
4:  hlt
    jmp 4b

tick:
    push %eax
    push %ecx
    mov LOAD + (pages_per_tick - base), %ecx
    mov LOAD + (cursor - base), %eax
5:  incb (%eax)
    add $4096, %eax
    cmp LOAD + (ws_end - base), %eax
    jb 6f
    mov LOAD + (ws_start - base), %eax
6:  loop 5b
    mov %eax, LOAD + (cursor - base)
    mov $0x20, %al
    out %al, $0x20
    pop %ecx
    pop %eax
    iret

spurious:
    push %eax
    mov $0x20, %al
    out %al, $0xa0
    out %al, $0x20
    pop %eax
    iret
